"""Safe image decoding: every accepted format decodes to RGB uint8; every bad input is refused
with its own ``InvalidImage`` code and a message that says what arrived; no bytes escape that."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from lookalike.config import Settings
from lookalike.errors import ImageTooLarge, InvalidImage
from lookalike.vision.images import SUPPORTED_FORMATS, DecodedImage, decode_image, read_image

RED = (220, 20, 40)


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def encode(im: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR for any size, with a tiny IDAT: a bomb costs ~100 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def assert_rgb(d: DecodedImage, width: int, height: int) -> None:
    assert (d.width, d.height) == (width, height)
    assert d.rgb.shape == (height, width, 3)
    assert d.rgb.dtype == np.uint8
    assert d.rgb.flags.c_contiguous


def close(pixel: np.ndarray, expected: tuple[int, int, int], tol: int) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(expected)) <= tol))


# --- accepted formats ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "kwargs", "expected_format", "tol"),
    [
        ("JPEG", {"quality": 95}, "JPEG", 12),
        ("PNG", {}, "PNG", 0),
        ("WEBP", {"lossless": True}, "WEBP", 0),
        ("BMP", {}, "BMP", 0),
        ("GIF", {}, "GIF", 0),
        ("PPM", {}, "PPM", 0),
    ],
)
def test_colour_formats_decode_to_rgb(
    cfg: Settings, fmt: str, kwargs: dict[str, Any], expected_format: str, tol: int
) -> None:
    data = encode(Image.new("RGB", (24, 16), RED), fmt, **kwargs)
    d = decode_image(data, cfg)
    assert d.format == expected_format
    assert d.format in SUPPORTED_FORMATS
    assert_rgb(d, 24, 16)
    assert close(d.rgb[8, 12], RED, tol)
    assert d.sha256 == hashlib.sha256(data).hexdigest()


def test_pgm_greyscale_becomes_three_equal_channels(cfg: Settings) -> None:
    d = decode_image(encode(Image.new("L", (10, 12), 77), "PPM"), cfg)
    assert d.format == "PPM"  # Pillow names PGM/PBM/PPM all "PPM"
    assert_rgb(d, 10, 12)
    assert (d.rgb == 77).all()


def test_real_photo_from_skimage_decodes(cfg: Settings) -> None:
    skdata = pytest.importorskip("skimage.data")
    photo = skdata.astronaut()
    d = decode_image(encode(Image.fromarray(photo), "JPEG", quality=90), cfg)
    assert_rgb(d, 512, 512)
    assert np.abs(d.rgb.astype(int) - photo.astype(int)).mean() < 5  # JPEG loss only
    d.rgb[0, 0] = 0  # writable: cv2 and friends may draw on it


def test_exif_orientation_is_applied(cfg: Settings) -> None:
    # Stored landscape 40x20, red marker top-left; Orientation=6 means "rotate 90 degrees
    # clockwise to display", so the displayed image is portrait with the marker top-right.
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    d = decode_image(encode(im, "JPEG", quality=95, exif=exif.tobytes()), cfg)
    assert_rgb(d, 20, 40)
    assert close(d.rgb[3, -4], (255, 0, 0), 40)  # top-right: the marker
    assert close(d.rgb[3, 3], (0, 0, 255), 40)  # top-left: background
    assert close(d.rgb[-4, -4], (0, 0, 255), 40)


def test_broken_exif_keeps_the_pixels(cfg: Settings) -> None:
    data = encode(Image.new("RGB", (16, 16), RED), "JPEG", exif=b"Exif\x00\x00garbage")
    assert_rgb(decode_image(data, cfg), 16, 16)


def test_cmyk_jpeg_becomes_rgb(cfg: Settings) -> None:
    d = decode_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"), cfg)
    assert d.format == "JPEG"
    assert_rgb(d, 16, 16)
    assert close(d.rgb[8, 8], (255, 0, 0), 20)  # cyan 0, magenta+yellow full = red


def test_16_bit_greyscale_png_is_scaled_not_clipped(cfg: Settings) -> None:
    grey = np.zeros((8, 12), dtype=np.uint16)
    grey[:, 4:8] = 32768
    grey[:, 8:] = 65535
    im = Image.fromarray(grey)
    assert im.mode == "I;16"
    d = decode_image(encode(im, "PNG"), cfg)
    assert_rgb(d, 12, 8)
    assert (d.rgb[:, :4] == 0).all()
    assert (np.abs(d.rgb[:, 4:8].astype(int) - 128) <= 1).all()  # clipping would give 255
    assert (d.rgb[:, 8:] == 255).all()


def test_16_bit_pgm_is_scaled(cfg: Settings) -> None:
    data = b"P5\n8 8\n65535\n" + struct.pack(">H", 16384) * 64
    d = decode_image(data, cfg)
    assert (np.abs(d.rgb.astype(int) - 64) <= 1).all()


def test_rgba_is_composited_on_white(cfg: Settings) -> None:
    rgba = np.zeros((8, 12, 4), dtype=np.uint8)  # left third: transparent black
    rgba[:, 4:8] = (255, 0, 0, 128)  # middle: half-transparent red
    rgba[:, 8:] = (255, 0, 0, 255)  # right: opaque red
    d = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), cfg)
    assert_rgb(d, 12, 8)
    assert (d.rgb[:, :4] == 255).all()
    assert close(d.rgb[4, 5], (255, 127, 127), 2)
    assert (d.rgb[:, 8:] == (255, 0, 0)).all()


def test_palette_transparency_and_grey_alpha_become_white(cfg: Settings) -> None:
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    d = decode_image(encode(pal, "PNG", transparency=1), cfg)
    assert (d.rgb == 255).all()
    la = Image.new("LA", (8, 8), (0, 0))
    assert (decode_image(encode(la, "PNG"), cfg).rgb == 255).all()


def test_animated_gif_gives_first_frame(cfg: Settings) -> None:
    first = Image.new("RGB", (16, 16), (255, 0, 0))
    second = Image.new("RGB", (16, 16), (0, 0, 255))
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=50, loop=0)
    with Image.open(io.BytesIO(data)) as im:
        assert getattr(im, "n_frames", 1) == 2
    d = decode_image(data, cfg)
    assert d.format == "GIF"
    assert (d.rgb == (255, 0, 0)).all()


def test_multi_picture_jpeg_reads_as_jpeg(cfg: Settings) -> None:
    # Many cameras write MPO (several JPEGs in one file); Pillow calls it "MPO".
    left, right = Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), (0, 0, 255))
    data = encode(left, "MPO", save_all=True, append_images=[right])
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "MPO"
    d = decode_image(data, cfg)
    assert d.format == "JPEG"
    assert close(d.rgb[8, 8], RED, 12)


def test_read_image_reads_a_file(cfg: Settings, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    data = encode(Image.new("RGB", (9, 9), RED), "PNG")
    path.write_bytes(data)
    d = read_image(path, cfg)
    assert_rgb(d, 9, 9)
    assert d.sha256 == hashlib.sha256(data).hexdigest()


# --- refused inputs ------------------------------------------------------------------------------


def half_jpeg() -> bytes:
    data = encode(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG"
    )
    return data[: len(data) // 2]


def gif_0x0() -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", 0, 0, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, 0, 0, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b";"


def bmp_0x0() -> bytes:
    data = encode(Image.new("RGB", (8, 8)), "BMP")
    return data[:18] + struct.pack("<ii", 0, 0) + data[26:]


def jpeg_0_high() -> bytes:
    data = encode(Image.new("RGB", (16, 16)), "JPEG")
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", 0, 16) + data[sof + 9 :]


BAD_INPUTS: list[tuple[str, Callable[[], bytes], Settings | None, str, str]] = [
    ("empty", lambda: b"", None, "image.empty", "0 bytes"),
    ("half jpeg", half_jpeg, None, "image.corrupt", "truncated"),
    ("text", lambda: b"Hello, this is a text file.\n", None, "image.not_an_image", "Hello"),
    ("zip", lambda: b"PK\x03\x04" + b"\x00" * 40, None, "image.not_an_image", "50 4b 03 04"),
    ("bomb", lambda: png_header_only(20000, 20000), None, "image.too_many_pixels", "20000x20000"),
    ("our bomb", lambda: png_header_only(8000, 6000), None, "image.too_many_pixels", "8000x6000"),
    ("png 0x0", lambda: png_header_only(0, 0), None, "image.too_small", "0x0"),
    ("bmp 0x0", bmp_0x0, None, "image.too_small", "0x0"),
    ("gif 0x0", gif_0x0, None, "image.too_small", "0x0"),
    ("jpeg 16x0", jpeg_0_high, None, "image.too_small", "16x0"),
    ("1x1", lambda: encode(Image.new("RGB", (1, 1)), "PNG"), None, "image.too_small", "1x1"),
    (
        "over byte limit",
        lambda: encode(Image.new("RGB", (64, 64), RED), "BMP"),
        Settings(max_image_bytes=1000),
        "image.too_many_bytes",
        "12.1 KB",
    ),
    (
        "tiff",
        lambda: encode(Image.new("RGB", (16, 16)), "TIFF"),
        None,
        "image.unsupported_format",
        "TIFF",
    ),
    (
        "ico",
        lambda: encode(Image.new("RGB", (16, 16)), "ICO"),
        None,
        "image.unsupported_format",
        "ICO",
    ),
    (
        "eps",
        lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n",
        None,
        "image.unsupported_format",
        "EPS",
    ),
    (
        "heic",
        lambda: b"\x00\x00\x00\x18ftypheic" + b"\x00" * 32,
        None,
        "image.unsupported_format",
        "HEIC",
    ),
    ("broken png header", lambda: png_header_only(16, 16)[:20], None, "image.corrupt", "PNG"),
]


@pytest.mark.parametrize(
    ("label", "make", "limits", "code", "arrived"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_is_refused_with_its_code(
    cfg: Settings,
    label: str,
    make: Callable[[], bytes],
    limits: Settings | None,
    code: str,
    arrived: str,
) -> None:
    with pytest.raises(InvalidImage) as info:
        decode_image(make(), limits or cfg, name="upload.jpg")
    err = info.value
    assert err.code == code
    assert err.message and "upload.jpg" in err.message
    assert arrived in err.message
    assert "Expected" in err.message
    assert err.to_dict()["error"]["code"] == code
    if code in ("image.too_many_bytes", "image.too_many_pixels"):
        assert isinstance(err, ImageTooLarge) and err.status == 413


def test_error_details_hold_the_numbers(cfg: Settings) -> None:
    with pytest.raises(ImageTooLarge) as info:
        decode_image(b"x" * 2000, Settings(max_image_bytes=1000))
    assert info.value.details["bytes"] == 2000
    assert info.value.details["max_bytes"] == 1000
    with pytest.raises(ImageTooLarge) as info:
        decode_image(png_header_only(8000, 6000), cfg)
    assert info.value.details["width"] == 8000
    assert info.value.details["pixels"] == 48_000_000
    assert info.value.details["max_pixels"] == cfg.max_image_pixels
    with pytest.raises(InvalidImage) as info2:
        decode_image(encode(Image.new("RGB", (4, 20)), "PNG"), cfg)
    assert info2.value.details == {"name": "image", "width": 4, "height": 20, "min_side": 8}


def test_bomb_is_refused_fast_without_decoding(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(self: Any) -> Any:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    small_limit = Settings(home=cfg.home, max_image_pixels=10_000)
    for data, limits in [
        (png_header_only(20000, 20000), cfg),  # over Pillow's own bomb limit too
        (png_header_only(8000, 6000), cfg),  # over ours only
        (encode(Image.new("RGB", (200, 200)), "PNG"), small_limit),
    ]:
        start = time.perf_counter()
        with pytest.raises(ImageTooLarge) as info:
            decode_image(data, limits)
        assert info.value.code == "image.too_many_pixels"
        assert time.perf_counter() - start < 0.5


def test_truncated_images_are_not_silently_accepted(cfg: Settings) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    png = encode(
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)), "PNG"
    )
    for data in (half_jpeg(), png[: len(png) // 2]):
        with pytest.raises(InvalidImage) as info:
            decode_image(data, cfg)
        assert info.value.code == "image.corrupt"


def test_read_image_checks_the_size_before_reading(cfg: Settings, tmp_path: Path) -> None:
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as fh:
        fh.truncate(50 * 1024**3)  # sparse 50 GB: reading it would take minutes
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge) as info:
        read_image(huge, cfg)
    assert info.value.code == "image.too_many_bytes"
    assert "50.0 GB" in info.value.message
    assert str(huge) in info.value.message
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("kind", ["missing", "directory", "text"])
def test_read_image_refuses_unreadable_paths(cfg: Settings, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "photo.jpg"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("not a photo")
    with pytest.raises(InvalidImage) as info:
        read_image(path, cfg)
    expected = "image.not_an_image" if kind == "text" else "image.unreadable"
    assert info.value.code == expected
    assert str(path) in info.value.message


# --- never anything but InvalidImage -------------------------------------------------------------

FUZZ_LIMITS = Settings(max_image_pixels=1_000_000)  # keeps a mutated header from costing time


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(2)
    im = Image.fromarray(rng.integers(0, 255, (12, 16, 3), np.uint8))
    return [
        encode(im, "JPEG"),
        encode(im, "JPEG", progressive=True),
        encode(im, "PNG"),
        encode(im.convert("P"), "GIF"),
        encode(im, "BMP"),
        encode(im, "WEBP"),
        encode(im.convert("L"), "PPM"),
    ]


SEEDS = _seeds()


def _check_never_escapes(data: bytes) -> None:
    try:
        d = decode_image(data, FUZZ_LIMITS)
    except InvalidImage as err:
        assert err.code.startswith("image.") and err.message
        return
    assert d.rgb.ndim == 3 and d.rgb.shape[2] == 3 and d.rgb.dtype == np.uint8
    assert d.rgb.shape[:2] == (d.height, d.width)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_invalid_image(data: bytes) -> None:
    _check_never_escapes(data)


@hsettings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_mutated_images_raise_only_invalid_image(
    seed: bytes, flips: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(seed)
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _check_never_escapes(bytes(data))
