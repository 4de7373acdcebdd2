"""Safe image decoding: untrusted bytes in, an RGB ``uint8`` array out, or an ``InvalidImage``.

Every image the service touches (uploads, imported folders) goes through ``decode_image`` so the
limits in ``Settings`` are enforced in one place:

* the byte limit before anything is parsed;
* the pixel limit from the header, before Pillow allocates the pixel buffer (``Image.open`` is
  lazy), so a decompression bomb costs a few hundred bytes of parsing, not gigabytes;
* an allow-list of formats passed to ``Image.open(formats=...)``, so Pillow never tries its other
  plugins on hostile bytes (TIFF, PSD, EPS - which would run Ghostscript - and so on).

Any exception from the decoder becomes an ``InvalidImage`` subclass with a stable ``code``; a
caller never sees a Pillow traceback, whatever the bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
import re
import stat
import struct
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lookalike.config import Settings, get_settings
from lookalike.errors import ImageTooLarge, InvalidImage

__all__ = ["SUPPORTED_FORMATS", "DecodedImage", "check_image_bytes", "decode_image", "read_image"]

# Pillow's format ids. PGM and PBM are read by the "PPM" plugin and reported as "PPM".
SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "PPM"})
_SUPPORTED_TEXT = "JPEG, PNG, WebP, BMP, GIF or PGM/PPM"
_ORDER = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "PPM")  # most common first: fewer probes

# EXIF orientation -> transpose, as in ImageOps.exif_transpose. We apply it ourselves because
# exif_transpose also re-serialises the EXIF block, which can fail on broken EXIF and would cost
# us the rotation of an otherwise fine photo.
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112
_HIGH_BIT_GREY = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image. ``rgb`` is HxWx3 ``uint8``, C-contiguous, with EXIF orientation applied."""

    rgb: np.ndarray
    format: str  # Pillow's format name, one of SUPPORTED_FORMATS
    width: int
    height: int
    sha256: str  # of the original bytes: a stable id for caching and de-duplication


def decode_image(
    data: bytes, settings: Settings | None = None, *, name: str = "image"
) -> DecodedImage:
    """Decode untrusted ``data`` into RGB, enforcing the limits in ``settings``.

    Raises an ``InvalidImage`` subclass (never anything else) when the bytes are refused; its
    ``code`` says why: ``image.empty``, ``image.too_many_bytes``, ``image.too_many_pixels``,
    ``image.too_small``, ``image.not_an_image``, ``image.unsupported_format``, ``image.corrupt``.
    """
    settings = settings or get_settings()
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InvalidImage(
            f"Expected the bytes of an image for {name}; got a {type(data).__name__}. "
            "Pass the file's raw bytes (open it in binary mode).",
            code="image.not_an_image",
            details={"name": name, "type": type(data).__name__},
        )
    if not data:
        raise InvalidImage(
            f"Expected an image ({_SUPPORTED_TEXT}); {name} is empty (0 bytes). "
            "Choose a photo file and try again.",
            code="image.empty",
            details={"name": name, "bytes": 0},
        )
    _check_bytes(len(data), settings.max_image_bytes, name)
    digest = hashlib.sha256(data).hexdigest()

    # Pillow reports odd-but-decodable input (broken EXIF, malformed MPO index, ...) through
    # warnings; our outcome is the return value or the error code, so keep them out of the logs.
    # DecompressionBombWarning is included: our own (stricter by default) pixel limit applies.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rgb, fmt = _decode(data, settings, name)
    height, width = rgb.shape[:2]
    return DecodedImage(rgb=rgb, format=fmt, width=width, height=height, sha256=digest)


def read_image(path: str | Path, settings: Settings | None = None) -> DecodedImage:
    """Read and decode an image file; the byte limit is checked before the file is read."""
    settings = settings or get_settings()
    name = str(path)
    limit = settings.max_image_bytes
    try:
        # stat before open: opening a FIFO blocks until a writer appears, and a device or a
        # FIFO may never end; only regular files are images.
        mode = os.stat(path).st_mode
        if stat.S_ISREG(mode):
            with open(path, "rb") as fh:
                _check_bytes(os.fstat(fh.fileno()).st_size, limit, name)
                data = fh.read(limit + 1)  # bounded: the file may have grown since fstat
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidImage(
            f"Expected a readable image file; could not read {name} ({reason}). "
            "Check the path and its permissions.",
            code="image.unreadable",
            details={"name": name, "reason": reason},
        ) from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise InvalidImage(
            f"Expected an image file; {name} is {what}. Give the path of a photo file.",
            code="image.unreadable",
            details={"name": name},
        )
    _check_bytes(len(data), limit, name)
    return decode_image(data, settings, name=name)


# --- decoding ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _open_formats() -> tuple[str, ...]:
    """The allowed formats this Pillow build can read (WebP support is optional in Pillow).

    Importing the plugins explicitly registers them without ``Image.init()`` loading every
    plugin; ``Image.open`` raises ``KeyError`` for a format id that is not registered.
    """
    for plugin in ("Jpeg", "Png", "Bmp", "Gif", "Ppm"):
        importlib.import_module(f"PIL.{plugin}ImagePlugin")
    with contextlib.suppress(ImportError):  # Pillow built without libwebp
        importlib.import_module("PIL.WebPImagePlugin")
    return tuple(f for f in _ORDER if f in Image.OPEN)


def _decode(data: bytes, settings: Settings, name: str) -> tuple[np.ndarray, str]:
    try:
        im = Image.open(io.BytesIO(data), formats=list(_open_formats()))
    except Image.DecompressionBombError as exc:
        # Pillow's own (higher) limit tripped inside open(); same refusal as ours. The header's
        # size is shown only when it is what tripped (a GIF frame can outgrow its screen).
        pixels, declared = _pixels_from(exc), _declared_size(data)
        if declared is not None and pixels is not None and declared[0] * declared[1] != pixels:
            declared = None
        raise _too_many_pixels(name, settings, declared, pixels) from None
    except UnidentifiedImageError:
        raise _unidentified(data, settings, name, None) from None
    except Exception as exc:  # header parsing raised something other than "not mine"
        raise _unidentified(data, settings, name, exc) from None

    with im:
        # Pillow calls an MPO (multi-picture JPEG from many cameras) "MPO"; its first frame is a
        # plain JPEG, which is all we read.
        fmt = "JPEG" if im.format == "MPO" else str(im.format)
        if fmt not in SUPPORTED_FORMATS:  # defensive: open() was given the allow-list
            raise _unsupported(fmt, name)
        width, height = im.size
        # Header checks, before load() allocates width*height pixels.
        if width * height > settings.max_image_pixels:
            raise _too_many_pixels(name, settings, (width, height))
        if min(width, height) < settings.min_image_side:
            raise _too_small(name, settings, width, height)
        try:
            im.load()  # first frame only: we never seek, so animations cost one frame
            rgb = _to_rgb(_apply_orientation(im))
        except Image.DecompressionBombError as exc:  # a GIF frame larger than its screen
            raise _too_many_pixels(name, settings, None, _pixels_from(exc)) from None
        except Exception as exc:  # truncated stream, bad checksum, broken chunk, ...
            raise _corrupt(fmt, name, exc) from None
    return rgb, fmt


def _apply_orientation(im: Image.Image) -> Image.Image:
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        method = _ORIENTATION.get(orientation)
    except Exception:  # unreadable EXIF: the pixels are still fine, keep them as stored
        return im
    return im.transpose(method) if method is not None else im


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any mode our formats produce -> HxWx3 uint8 RGB (alpha composited on white)."""
    mode = im.mode
    if mode in _HIGH_BIT_GREY:
        # 16-bit greyscale (PNG, PGM with maxval > 255): scale 0..65535 onto 0..255, rounding.
        # Pillow's own convert("L") clips instead, turning most of the range white.
        grey = np.asarray(im).astype(np.int64)
        grey = (np.clip(grey, 0, 65535) * 255 + 32767) // 65535
        return _grey_to_rgb(grey.astype(np.uint8))
    if mode == "F":
        # Float greyscale (PFM): nominally 0..1; brighter scenes are scaled to fit.
        grey_f = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        grey_f = np.clip(grey_f / max(1.0, float(grey_f.max(initial=0.0))), 0.0, 1.0)
        return _grey_to_rgb(np.rint(grey_f * 255).astype(np.uint8))
    if mode in _ALPHA_MODES or "transparency" in im.info:
        # Palette or RGB with a transparent colour, or a real alpha channel: composite on
        # white so transparent areas do not turn black (the default of a plain convert).
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        im = out
    elif mode != "RGB":
        im = im.convert("RGB")  # L, 1, P, CMYK (Adobe-inverted CMYK is undone by the plugin)
    # np.array copies: np.asarray over a Pillow image is read-only, which surprises cv2.
    return np.ascontiguousarray(np.array(im, dtype=np.uint8))


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


# --- errors --------------------------------------------------------------------------------------


def check_image_bytes(size: int, settings: Settings, name: str) -> None:
    """Refuse an image of ``size`` bytes before reading it (``image.too_many_bytes``)."""
    _check_bytes(size, settings.max_image_bytes, name)


def _check_bytes(size: int, limit: int, name: str) -> None:
    if size > limit:
        raise ImageTooLarge(
            f"Expected an image of at most {_human_bytes(limit)}; {name} is {_human_bytes(size)}. "
            "Resize or compress the photo and try again.",
            code="image.too_many_bytes",
            details={"name": name, "bytes": size, "max_bytes": limit},
        )


def _too_many_pixels(
    name: str, settings: Settings, size: tuple[int, int] | None, pixels: int | None = None
) -> ImageTooLarge:
    limit = settings.max_image_pixels
    width, height = size if size is not None else (None, None)
    if size is not None:
        pixels = size[0] * size[1]
        got = f"{name} is {size[0]}x{size[1]} ({_human_pixels(pixels)})"
    elif pixels is not None:
        got = f"{name} has {_human_pixels(pixels)}"
    else:
        got = f"{name} is larger than that"
    return ImageTooLarge(
        f"Expected an image of at most {_human_pixels(limit)}; {got}. "
        "Resize the photo to fewer pixels and try again.",
        code="image.too_many_pixels",
        details={
            "name": name,
            "width": width,
            "height": height,
            "pixels": pixels,
            "max_pixels": limit,
        },
    )


def _too_small(name: str, settings: Settings, width: int, height: int) -> InvalidImage:
    side = settings.min_image_side
    return InvalidImage(
        f"Expected an image at least {side}x{side} pixels; {name} is {width}x{height}. "
        "Use a larger photo.",
        code="image.too_small",
        details={"name": name, "width": width, "height": height, "min_side": side},
    )


def _unsupported(fmt: str, name: str) -> InvalidImage:
    return InvalidImage(
        f"Expected a {_SUPPORTED_TEXT} image; {name} is a {fmt} file, which is not accepted. "
        "Convert it to JPEG or PNG and try again.",
        code="image.unsupported_format",
        details={"name": name, "format": fmt, "supported": sorted(SUPPORTED_FORMATS)},
    )


def _corrupt(fmt: str, name: str, exc: BaseException | None) -> InvalidImage:
    reason = _reason(exc) if exc is not None else "its header could not be parsed"
    return InvalidImage(
        f"Expected a complete {fmt} image; {name} is truncated or corrupt ({reason}). "
        "Re-export or re-download the photo and try again.",
        code="image.corrupt",
        details={"name": name, "format": fmt, "reason": reason},
    )


def _unidentified(
    data: bytes, settings: Settings, name: str, exc: BaseException | None
) -> InvalidImage:
    """No allowed plugin took the bytes: a damaged supported file, another format, or junk."""
    sniffed = _sniff(data)
    if sniffed in SUPPORTED_FORMATS:
        # Pillow refuses a 0-pixel side while parsing the header ("not identified by this
        # driver"); read the declared size so a 0x0 image is reported as too small, not corrupt.
        size = _declared_size(data)
        if size is not None and min(size) < settings.min_image_side:
            return _too_small(name, settings, *size)
        return _corrupt(sniffed, name, exc)
    if sniffed is not None:
        return _unsupported(sniffed, name)
    head = data[:8]
    text = head.decode("ascii", "replace") if head.isascii() else None
    seen = f"{text!r}, hex {head.hex(' ')}" if text and text.isprintable() else head.hex(" ")
    return InvalidImage(
        f"Expected an image ({_SUPPORTED_TEXT}); the first bytes of {name} ({seen}) are not an "
        "image signature. Check that the file is a photo and not another kind of file renamed.",
        code="image.not_an_image",
        details={"name": name, "first_bytes": head.hex(), "supported": sorted(SUPPORTED_FORMATS)},
    )


# Magic numbers, only to word the error when Pillow (limited to SUPPORTED_FORMATS) gave up: a
# damaged PNG deserves "corrupt", a TIFF "unsupported", a text file "not an image".
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"8BPS", "PSD"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"icns", "ICNS"),
)
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC"}
_FTYP_BRANDS |= {b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def _sniff(data: bytes) -> str | None:
    for magic, fmt in _SIGNATURES:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12], "MP4/MOV video")
    # "BM" alone is too weak (text can start with it): also check the DIB header size.
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if re.match(rb"P[1-6f]\s", data[:3]):
        return "PPM"
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    return None


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG, DAC are not frames


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """Width and height as the header states them, for error messages only.

    Used when Pillow refused the header (a 0-pixel side) or tripped its bomb limit before we
    could read ``im.size``. Best effort: ``None`` when the header is not understood.
    """
    try:
        fmt = _sniff(data)
        if fmt == "PNG" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
        elif fmt == "GIF":
            w, h = struct.unpack("<HH", data[6:10])
        elif fmt == "BMP":
            if int.from_bytes(data[14:18], "little") == 12:
                w, h = struct.unpack("<HH", data[18:22])
            else:
                w, h = struct.unpack("<ii", data[18:26])
        elif fmt == "PPM":
            match = re.match(rb"P[1-6]\s+(\d+)\s+(\d+)", data[:64])
            if match is None:
                return None
            w, h = int(match.group(1)), int(match.group(2))
        elif fmt == "WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = 1 + int.from_bytes(data[24:27], "little")
                h = 1 + int.from_bytes(data[27:30], "little")
            elif chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                w, h = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            elif chunk == b"VP8 ":
                w, h = (v & 0x3FFF for v in struct.unpack("<HH", data[26:30]))
            else:
                return None
        elif fmt == "JPEG":
            return _jpeg_size(data)
        else:
            return None
    except (struct.error, ValueError):
        return None
    return abs(w), abs(h)  # BMP stores top-down images with a negative height


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _pixels_from(exc: BaseException) -> int | None:
    # "Image size (400000000 pixels) exceeds limit of ..." - the only place Pillow gives the size.
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return int(match.group(1)) if match else None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _human_pixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels" if n >= 100_000 else f"{n:,} pixels"


def _human_bytes(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"
