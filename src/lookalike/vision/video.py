"""Safe video decoding: the untrusted bytes of a short face video in, RGB frames sampled by time
out, or an ``InvalidVideo``.

A visitor joins the gallery with a short (2-10 s) webcam video in which they turn their head.
Every such video goes through this module (the sibling of ``images.py`` for photos) so the
limits in ``Settings`` (the ``video_*`` fields) are enforced in one place, each before the work
it guards:

* the byte limit, before anything is parsed (413 ``video.too_large``);
* the container, from its first bytes: ISO BMFF (MP4, MOV, 3GP) or Matroska (WebM, MKV) only;
  any other file is refused by its signature without FFmpeg probing it, and the FFmpeg demuxer
  is named explicitly (and held to ``format_whitelist``), so no other demuxer (HLS playlists,
  concat lists, image sequences, ...) ever reads the bytes;
* a file cut short (an MP4 box or the Matroska segment running past the end, an MP4 without its
  index), from the container's own framing, before FFmpeg opens it;
* the codec (H.264, HEVC, VP8, VP9, AV1), the frame size, the duration and the frame count from
  the stream's header, before any frame is decoded. While the file is opened no decoder may run
  at all (``codec_whitelist`` names none): PyAV always calls ``avformat_find_stream_info``, which
  would otherwise decode frames to fill in parameters, e.g. an 8000x8000 H.264 frame (150 MB)
  from a 15 KB file;
* a container that declares no duration (browser recordings: WebM from ``MediaRecorder``) has its
  packets' timestamps and count read (demuxed, not decoded) before decoding;
* while decoding: the frame size again (``max_pixels`` set on the decoder, so a stream whose
  frames are larger than its header said is refused before the picture is allocated), the frames'
  time, their count and the wall time spent (``video_decode_seconds``; time the caller spends on
  a yielded frame does not count).

Any exception from PyAV becomes an ``InvalidVideo`` with a stable ``code``; a caller never sees
an FFmpeg traceback, whatever the bytes.

A video cut short or damaged is refused (``video.truncated``) wherever that shows, even after
frames were yielded: the part that decodes may miss the head turn the feature needs, and "record
it again" is a clearer answer than a gallery entry built from part of a video. A caller therefore
keeps the frames of ``sample_frames`` only once the iterator is exhausted.

Rotation: phones store portrait video as landscape frames plus a display matrix; each sampled
frame is turned upright (``VideoFrame.rotation``, multiples of 90 degrees; mirroring in the
matrix is ignored). ``VideoInfo.width`` and ``height`` are the stored size (the limit applies to
it), so a rotated video's frames come out ``width`` high and ``height`` wide.

PyAV (``av``) is imported when a video is first opened; without it every call raises
``VideoUnavailable`` (503), and importing this module needs only numpy.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.config import Settings
from lookalike.errors import LookalikeError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

__all__ = [
    "SUPPORTED_CODECS",
    "SUPPORTED_CONTAINERS",
    "InvalidVideo",
    "VideoInfo",
    "VideoTooLarge",
    "VideoUnavailable",
    "probe_video",
    "sample_frames",
]


class InvalidVideo(LookalikeError):
    """The bytes are not a video we accept (codes ``video.*``, status 422)."""

    code = "video.invalid"
    status = 422


class VideoTooLarge(InvalidVideo):
    """More bytes than ``video_max_bytes`` (refused before anything is parsed)."""

    code = "video.too_large"
    status = 413


class VideoUnavailable(LookalikeError):
    """PyAV is not installed, so no video can be decoded."""

    code = "video.unavailable"
    status = 503


@dataclass(frozen=True)
class VideoInfo:
    """A video as its header describes it (its packets, for a duration the header lacks),
    checked against the limits; no frame decoded."""

    container: str  # "mp4", "mov", "webm" or "matroska"
    codec: str  # one of SUPPORTED_CODECS
    width: int  # as stored; frames with a 90/270 degree rotation come out height x width
    height: int
    seconds: float  # declared by the container, else measured from the packets' timestamps
    frames: int | None  # declared frame count (MP4/MOV); None when the container has none
    fps: float | None  # average frame rate, None when unknown


SUPPORTED_CONTAINERS: tuple[str, ...] = ("mp4", "mov", "webm", "matroska")
_CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC", "vp8": "VP8", "vp9": "VP9", "av1": "AV1"}
SUPPORTED_CODECS: frozenset[str] = frozenset(_CODEC_NAMES)  # FFmpeg's canonical codec names
_SUPPORTED_TEXT = "an MP4, MOV or WebM video"

# Our container families -> the FFmpeg demuxer opened for them (no probing).
_DEMUXER = {"iso": "mov", "matroska": "matroska"}
_FORMAT_WHITELIST = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm"
_NO_DECODER = "-"  # a codec_whitelist no decoder matches: nothing decoded while opening
_DECODER_THREADS = 2
_EPSILON = 1e-3  # seconds: float rounding in the duration comparisons

# --- public API ----------------------------------------------------------------------------------


def probe_video(data: bytes, settings: Settings, name: str = "the video") -> VideoInfo:
    """Check ``data`` against the ``video_*`` limits and describe it, decoding no frame.

    Raises ``VideoTooLarge`` (413, ``video.too_large``) or ``InvalidVideo`` (422) with code
    ``video.unreadable``, ``video.no_video_stream``, ``video.unsupported_format``,
    ``video.unsupported_codec``, ``video.truncated``, ``video.frames_too_large``,
    ``video.too_long``, ``video.too_short``, ``video.too_many_frames`` or
    ``video.decode_timeout``; ``VideoUnavailable`` (503) without PyAV.
    """
    data = _as_bytes(data, name)
    _family, info = _inspect(data, settings, name, _Clock(settings.video_decode_seconds))
    return info


def sample_frames(
    data: bytes, settings: Settings, name: str = "the video"
) -> Iterator[tuple[float, np.ndarray]]:
    """Decode ``data`` and yield ``(seconds, rgb)`` about ``video_sample_fps`` times a second.

    ``seconds`` counts from the first frame and increases; ``rgb`` is HxWx3 ``uint8``,
    C-contiguous, upright. A frame is taken at the first frame whose presentation time
    (``pts * time_base``) reaches each step of ``1 / video_sample_fps``, whatever the source's
    frame rate (a source slower than that gives every frame); frames without a timestamp are
    placed one frame period after the previous one. Only sampled frames are converted to RGB;
    apart from the decoder's own reference frames, at most the frame being decoded and the one
    yielded are held.

    Lazy: nothing is read until the first frame is asked for. Every check of ``probe_video``
    runs first, then the decoded frames are held to the same limits (time, count, size, wall
    time), so the iterator can raise ``InvalidVideo`` after yielding frames (``video.too_long``,
    ``video.too_many_frames``, ``video.too_short``, ``video.truncated``,
    ``video.frames_too_large``, ``video.decode_timeout``): keep the frames only once it ends.
    """
    data = _as_bytes(data, name)
    clock = _Clock(settings.video_decode_seconds)
    family, info = _inspect(data, settings, name, clock)
    with _opened(data, family, name, clock) as container:
        stream = _video_stream(container, name)
        yield from _decode(container, stream, info, settings, name, clock)


# --- opening and the header ----------------------------------------------------------------------


class _Clock:
    """Wall time spent on one video, paused while the caller holds a yielded frame."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.spent = 0.0
        self.since = time.monotonic()

    def elapsed(self) -> float:
        return self.spent + (time.monotonic() - self.since)

    def remaining(self) -> float:
        return max(self.limit - self.elapsed(), 0.001)

    def pause(self) -> None:
        self.spent += time.monotonic() - self.since

    def resume(self) -> None:
        self.since = time.monotonic()

    def check(self, name: str, at: float | None = None) -> None:
        if self.elapsed() > self.limit:
            raise _timeout(name, self, at)


def _as_bytes(data: Any, name: str) -> bytes:
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if not isinstance(data, bytes):
        raise InvalidVideo(
            f"Expected the bytes of a video for {name}; got a {type(data).__name__}. "
            "Pass the file's raw bytes (open it in binary mode).",
            code="video.unreadable",
            details={"name": name, "type": type(data).__name__},
        )
    return data


def _inspect(data: bytes, settings: Settings, name: str, clock: _Clock) -> tuple[str, VideoInfo]:
    """Every check short of decoding; returns the container family and the ``VideoInfo``."""
    if not data:
        raise InvalidVideo(
            f"Expected {_SUPPORTED_TEXT}; {name} is empty (0 bytes). "
            "Record a short video of your face and try again.",
            code="video.unreadable",
            details={"name": name, "bytes": 0},
        )
    if len(data) > settings.video_max_bytes:
        raise _too_many_bytes(name, len(data), settings.video_max_bytes)
    family = _family(data)
    if family is None:
        raise _not_a_video(data, name)
    label = _label(data, family, name)
    _check_complete(data, family, name)

    with _opened(data, family, name, clock) as container:
        stream = _video_stream(container, name)
        codec = _codec(stream, name)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise InvalidVideo(
                f"Expected {_SUPPORTED_TEXT} whose header gives its frame size; {name}'s video "
                "track declares none. Re-export the video as MP4 (H.264) and try again.",
                code="video.unreadable",
                details={"name": name, "width": width, "height": height},
            )
        if width * height > settings.video_max_pixels:
            raise _frames_too_large(name, settings, width, height)
        seconds = _declared_seconds(container, stream)
        if seconds is not None:
            _check_seconds(seconds, settings, name, "declared")
        frames = stream.frames or None
        if frames is not None and frames > settings.video_max_frames:
            raise _too_many_frames(name, settings, frames, "declared")
        if seconds is None:
            seconds = _scan(container, stream, settings, name, clock)
            _check_seconds(seconds, settings, name, "packets")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
    clock.check(name)
    info = VideoInfo(label, codec, width, height, float(seconds), frames, fps)
    return family, info


@contextmanager
def _opened(data: bytes, family: str, name: str, clock: _Clock) -> Iterator[InputContainer]:
    try:
        import av
    except ImportError:
        raise VideoUnavailable(
            "Decoding videos needs PyAV, which is not installed on this server. "
            "Install PyAV (the `av` package) and restart the service.",
            code="video.unavailable",
        ) from None
    budget = clock.remaining()
    try:
        container = av.open(
            io.BytesIO(data),
            "r",
            format=_DEMUXER[family],
            container_options={
                "format_whitelist": _FORMAT_WHITELIST,
                "codec_whitelist": _NO_DECODER,
            },
            timeout=(budget, budget),
        )
    except av.error.ExitError:  # the interrupt callback: the time budget ran out
        raise _timeout(name, clock, None) from None
    except Exception as exc:  # any FFmpeg refusal of the bytes
        raise _unreadable_container(data, family, name, exc) from None
    try:
        yield container
    finally:
        container.close()


def _video_stream(container: InputContainer, name: str) -> VideoStream:
    from av.stream import Disposition

    streams = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
    if streams:
        return streams[0]
    kinds = sorted({s.type for s in container.streams})
    has = f"only {' and '.join(kinds)}" if kinds else "no tracks at all"
    raise InvalidVideo(
        f"Expected a video with pictures; {name} has no video track ({has}). "
        "Record a video of your face with the camera and try again.",
        code="video.no_video_stream",
        details={"name": name, "streams": kinds},
    )


def _codec(stream: VideoStream, name: str) -> str:
    context = stream.codec_context
    codec = context.codec.canonical_name if context is not None else None
    if codec in SUPPORTED_CODECS:
        return codec
    supported = ", ".join(_CODEC_NAMES.values())
    what = f"encoded with {context.codec.long_name}" if codec else "in an unknown codec"
    raise InvalidVideo(
        f"Expected a video encoded with one of {supported}; {name} is {what}. "
        "Convert it to MP4 (H.264) or WebM (VP8/VP9) and try again.",
        code="video.unsupported_codec",
        details={"name": name, "codec": codec, "supported": sorted(SUPPORTED_CODECS)},
    )


def _declared_seconds(container: InputContainer, stream: VideoStream) -> float | None:
    """The video track's duration, else the container's; None when neither is declared."""
    if stream.duration and stream.duration > 0 and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _check_seconds(seconds: float, settings: Settings, name: str, measured: str) -> None:
    if seconds > settings.video_max_seconds + _EPSILON:
        raise _too_long(name, settings, seconds, measured)
    if seconds < settings.video_min_seconds - _EPSILON:
        raise _too_short(name, settings, seconds, measured)


def _scan(
    container: InputContainer, stream: VideoStream, settings: Settings, name: str, clock: _Clock
) -> float:
    """Duration from the packets' timestamps, counting them; nothing is decoded.

    For containers that declare no duration (a browser's WebM). Refuses as soon as the packets
    pass ``video_max_seconds`` or ``video_max_frames``.
    """
    import av

    time_base = stream.time_base
    rate = stream.average_rate or stream.guessed_rate
    default_length = Fraction(1) / Fraction(rate) if rate else Fraction(0)  # packets without one
    first: Fraction | None = None
    end: Fraction | None = None
    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end
                continue
            count += 1
            if count > settings.video_max_frames:
                raise _too_many_frames(name, settings, count, "packets")
            if count % 64 == 0:
                clock.check(name)
            if packet.pts is None or time_base is None:
                continue
            start = packet.pts * time_base
            stop = start + (packet.duration * time_base if packet.duration else default_length)
            first = start if first is None else min(first, start)
            end = stop if end is None else max(end, stop)
            if end - first > settings.video_max_seconds + _EPSILON:
                raise _too_long(name, settings, float(end - first), "packets")
    except av.error.ExitError:
        raise _timeout(name, clock, None) from None
    except av.error.FFmpegError as exc:
        raise _damaged(name, None, exc) from None
    if first is not None and end is not None:
        return float(end - first)
    return float(count * default_length)


# --- decoding ------------------------------------------------------------------------------------


def _decode(
    container: InputContainer,
    stream: VideoStream,
    info: VideoInfo,
    settings: Settings,
    name: str,
    clock: _Clock,
) -> Iterator[tuple[float, np.ndarray]]:
    import av

    context = stream.codec_context
    context.thread_type = "AUTO"
    context.thread_count = _DECODER_THREADS
    # A frame larger than this is refused by the decoder before its picture is allocated: the
    # header was checked, but H.264/VP9 can change size inside the stream.
    context.options = {"max_pixels": str(settings.video_max_pixels)}

    time_base = stream.time_base
    step = Fraction(1) / Fraction(info.fps).limit_denominator(1000) if info.fps else None
    period = Fraction(1) / Fraction(settings.video_sample_fps).limit_denominator(1000)
    origin: Fraction | None = None  # presentation time of "0 s"
    previous: Fraction | None = None  # time of the previous frame, from origin
    last_length = Fraction(0)
    due = Fraction(0)  # the next sampling time
    count = 0
    frames = container.decode(stream)
    while True:
        try:
            frame: VideoFrame = next(frames)
        except StopIteration:
            break
        except av.error.ExitError:
            raise _timeout(name, clock, _seconds(previous)) from None
        except av.error.FFmpegError as exc:
            width, height = context.width, context.height
            if width * height > settings.video_max_pixels:  # the decoder's max_pixels tripped
                raise _frames_too_large(name, settings, width, height) from None
            raise _damaged(name, _seconds(previous), exc) from None
        count += 1
        if count > settings.video_max_frames:
            raise _too_many_frames(name, settings, count, "decoded")
        clock.check(name, _seconds(previous))
        if frame.width * frame.height > settings.video_max_pixels:  # defensive: see max_pixels
            raise _frames_too_large(name, settings, frame.width, frame.height)

        ticks = getattr(frame, "duration", 0)
        length = ticks * time_base if ticks and time_base else step
        estimate = previous + (step or last_length) if previous is not None else Fraction(0)
        if frame.pts is None or time_base is None:
            at = estimate
        else:
            pts = frame.pts * time_base
            if origin is None:
                origin = pts - estimate
            at = max(pts - origin, previous) if previous is not None else pts - origin
        if at > settings.video_max_seconds + _EPSILON:
            raise _too_long(name, settings, float(at), "decoded")
        previous, last_length = at, length or Fraction(0)

        if at >= due:
            due = (math.floor(at / period) + 1) * period
            rgb = _to_rgb(frame)
            del frame  # while the caller works, only the yielded array is held
            clock.pause()
            yield float(at), rgb
            clock.resume()
            del rgb
        else:
            del frame  # not sampled: never converted, released before the next is decoded

    if previous is None:
        raise InvalidVideo(
            f"Expected a video with frames; no frame of {name} could be decoded. "
            "Record the video again and try again.",
            code="video.unreadable",
            details={"name": name, "frames": 0},
        )
    covered = float(previous + last_length)
    if covered < settings.video_min_seconds - _EPSILON:
        raise _too_short(name, settings, covered, "decoded")


def _to_rgb(frame: VideoFrame) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    rotation = float(getattr(frame, "rotation", 0) or 0)
    quarters = round(rotation / 90)
    if quarters % 4 and abs(rotation - 90 * quarters) < 1:
        # rotation is counter-clockwise, as is np.rot90 for a positive k (row 0 at the top).
        rgb = np.rot90(rgb, quarters % 4)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _seconds(at: Fraction | None) -> float | None:
    return float(at) if at is not None else None


# --- the container's own framing ----------------------------------------------------------------

_ISO_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = 0x4282
_MATROSKA_SEGMENT = 0x18538067
_IMAGE_BRANDS = {b"heic": "a HEIC", b"heix": "a HEIC", b"heim": "a HEIC", b"heis": "a HEIC"}
_IMAGE_BRANDS |= {b"mif1": "a HEIF", b"msf1": "a HEIF", b"avif": "an AVIF", b"avis": "an AVIF"}


def _family(data: bytes) -> str | None:
    if data[4:8] in _ISO_BOXES:
        return "iso"
    if data.startswith(_EBML_MAGIC):
        return "matroska"
    return None


def _label(data: bytes, family: str, name: str) -> str:
    """The container's name for ``VideoInfo``; refuses HEIF/AVIF photos (ISO BMFF too)."""
    if family == "iso":
        brand = data[8:12] if data[4:8] == b"ftyp" else b"qt  "
        if brand in _IMAGE_BRANDS:
            raise _not_video_kind(name, f"{_IMAGE_BRANDS[brand]} image", "image")
        return "mov" if brand == b"qt  " else "mp4"
    header = _ebml_element(data, 0)
    if header is not None:
        _, start, size = header
        pos, stop = start, min(start + (size if size is not None else 0), len(data))
        while pos < stop:
            child = _ebml_element(data, pos)
            if child is None:
                break
            ident, body, length = child
            if length is None:
                break
            if ident == _EBML_DOCTYPE:
                return "webm" if data[body : body + length] == b"webm" else "matroska"
            pos = body + length
    return "matroska"


def _check_complete(data: bytes, family: str, name: str) -> None:
    """Refuse a file whose own framing says it is cut short (``video.truncated``)."""
    if family == "iso":
        _check_iso_complete(data, name)
        return
    header = _ebml_element(data, 0)
    if header is None or header[2] is None:
        return  # FFmpeg will say what is wrong
    segment = _ebml_element(data, header[1] + header[2])
    if segment is None:
        return
    ident, start, size = segment
    if ident != _MATROSKA_SEGMENT or size is None:
        return  # an unknown-size segment (a live recording): nothing to compare
    expected = start + size
    if expected > len(data):
        raise _cut_short(name, len(data), expected, "its segment runs past the end of the file")


def _check_iso_complete(data: bytes, name: str) -> None:
    pos, n = 0, len(data)
    kinds: set[bytes] = set()
    while pos + 8 <= n:
        size, kind, header = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8], 8
        if size == 1:  # 64-bit size
            if pos + 16 > n:
                raise _cut_short(name, n, pos + 16, f"its {_box(kind)} box is cut short")
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:  # runs to the end of the file
            size = n - pos
        if size < header:
            return  # not a box structure we understand: FFmpeg will say what is wrong
        if pos + size > n:
            raise _cut_short(name, n, pos + size, f"its {_box(kind)} box is cut short")
        kinds.add(kind)
        pos += size
    if b"mdat" in kinds and b"moov" not in kinds:
        raise InvalidVideo(
            f"Expected a complete video file; {name} has its pictures (mdat box) but no index "
            "(moov box), as when a recording is interrupted before it is saved. "
            "Record the video again and upload it once the recording has stopped.",
            code="video.truncated",
            details={"name": name, "bytes": n, "missing": "moov"},
        )


def _box(kind: bytes) -> str:
    text = kind.decode("latin-1")
    return repr(text) if text.isprintable() else kind.hex()


def _ebml_element(data: bytes, pos: int) -> tuple[int, int, int | None] | None:
    """(id, body start, body size or None when unknown) of the EBML element at ``pos``."""
    ident = _ebml_vint(data, pos, keep_marker=True)
    if ident is None:
        return None
    size = _ebml_vint(data, pos + ident[1], keep_marker=False)
    if size is None:
        return None
    length = size[1]
    unknown = size[0] == (1 << (7 * length)) - 1
    return ident[0], pos + ident[1] + length, None if unknown else size[0]


def _ebml_vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int] | None:
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos : pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length


# --- what else the bytes may be (to word the refusal) -------------------------------------------

# (signature, what it is, kind): kind "image" and "other" -> video.unreadable, "audio" ->
# video.no_video_stream, "video" (another container) -> video.unsupported_format.
_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "image"),
    (b"\xff\xd8\xff", "a JPEG image", "image"),
    (b"GIF87a", "a GIF image", "image"),
    (b"GIF89a", "a GIF image", "image"),
    (b"II*\x00", "a TIFF image", "image"),
    (b"MM\x00*", "a TIFF image", "image"),
    (b"%PDF", "a PDF document", "other"),
    (b"PK\x03\x04", "a ZIP archive", "other"),
    (b"ID3", "an MP3 audio file", "audio"),
    (b"fLaC", "a FLAC audio file", "audio"),
    (b"OggS", "an Ogg file", "video"),
    (b"FLV\x01", "an FLV video", "video"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "a WMV/ASF file", "video"),
    (b"\x00\x00\x01\xba", "an MPEG program stream", "video"),
    (b".RMF", "a RealMedia file", "video"),
)
_RIFF = {b"AVI ": ("an AVI video", "video"), b"WAVE": ("a WAV audio file", "audio")}
_RIFF[b"WEBP"] = ("a WebP image", "image")
_TS_PACKET = 188


def _sniff(data: bytes) -> tuple[str, str] | None:
    for magic, what, kind in _SIGNATURES:
        if data.startswith(magic):
            return what, kind
    if data[:4] == b"RIFF" and data[8:12] in _RIFF:
        return _RIFF[data[8:12]]
    if data[:1] == b"\x47" and data[_TS_PACKET : _TS_PACKET + 1] == b"\x47":
        return "an MPEG transport stream (.ts)", "video"
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "an MP3 audio file", "audio"
    text = data[:512].decode("utf-8", "replace")
    if text.count("\ufffd") <= 1 and all(c.isprintable() or c in "\r\n\t\ufffd" for c in text):
        return "a text file", "other"  # (one replacement: a character cut at byte 512)
    return None


def _not_a_video(data: bytes, name: str) -> InvalidVideo:
    sniffed = _sniff(data)
    if sniffed is not None:
        return _not_video_kind(name, *sniffed)
    head = data[:8]
    return InvalidVideo(
        f"Expected {_SUPPORTED_TEXT}; the first bytes of {name} ({head.hex(' ')}) are not a "
        "video signature. Check that the file is a video and not another kind of file renamed.",
        code="video.unreadable",
        details={"name": name, "first_bytes": head.hex(), "supported": list(SUPPORTED_CONTAINERS)},
    )


def _not_video_kind(name: str, what: str, kind: str) -> InvalidVideo:
    details = {"name": name, "detected": what, "supported": list(SUPPORTED_CONTAINERS)}
    if kind == "video":
        return InvalidVideo(
            f"Expected {_SUPPORTED_TEXT}; {name} is {what}, which is not accepted. "
            "Convert it to MP4 (H.264) or WebM and try again.",
            code="video.unsupported_format",
            details=details,
        )
    if kind == "audio":
        return InvalidVideo(
            f"Expected a video with pictures; {name} is {what}, with sound only. "
            "Record a video of your face with the camera and try again.",
            code="video.no_video_stream",
            details=details,
        )
    return InvalidVideo(
        f"Expected {_SUPPORTED_TEXT}; {name} is {what}, not a video. "
        "Record a short video of your face and upload that instead.",
        code="video.unreadable",
        details=details,
    )


# --- errors --------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    text = (strerror if isinstance(strerror, str) and strerror else str(exc)).strip()
    text = text or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _unreadable_container(data: bytes, family: str, name: str, exc: BaseException) -> InvalidVideo:
    kind = "an MP4/MOV" if family == "iso" else "a WebM/Matroska"
    reason = _reason(exc)
    return InvalidVideo(
        f"Expected {_SUPPORTED_TEXT}; {name} starts like {kind} file but could not be read "
        f"({reason}). Re-export or record the video again and try again.",
        code="video.unreadable",
        details={"name": name, "family": family, "reason": reason, "bytes": len(data)},
    )


def _too_many_bytes(name: str, size: int, limit: int) -> VideoTooLarge:
    return VideoTooLarge(
        f"Expected a video of at most {_human_bytes(limit)}; {name} is {_human_bytes(size)}. "
        "Record a shorter video or at a lower resolution and try again.",
        code="video.too_large",
        details={"name": name, "bytes": size, "max_bytes": limit},
    )


def _cut_short(name: str, size: int, expected: int, what: str) -> InvalidVideo:
    return InvalidVideo(
        f"Expected a complete video file; {name} is cut short: {what} ({size:,} bytes arrived, "
        f"the file says at least {expected:,}). Upload the whole file again, once the recording "
        "has been saved.",
        code="video.truncated",
        details={"name": name, "bytes": size, "expected_bytes": expected},
    )


def _damaged(name: str, at: float | None, exc: BaseException) -> InvalidVideo:
    reason = _reason(exc)
    where = f"past {at:.1f} s" if at is not None else "from its first frame"
    return InvalidVideo(
        f"Expected a complete video; {name} could not be decoded {where} ({reason}): the file "
        "is cut short or damaged. Upload it again or record a new video.",
        code="video.truncated",
        details={"name": name, "seconds": at, "reason": reason},
    )


def _frames_too_large(name: str, settings: Settings, width: int, height: int) -> InvalidVideo:
    limit = settings.video_max_pixels
    pixels = width * height
    return InvalidVideo(
        f"Expected video frames of at most {_human_pixels(limit)}; {name} has {width}x{height} "
        f"frames ({_human_pixels(pixels)}). Record at {_resolution_within(limit)} or lower and "
        "try again.",
        code="video.frames_too_large",
        details={
            "name": name,
            "width": width,
            "height": height,
            "pixels": pixels,
            "max_pixels": limit,
        },
    )


_MEASURED = {"declared": "is declared as", "packets": "lasts", "decoded": "runs to at least"}


def _too_long(name: str, settings: Settings, seconds: float, measured: str) -> InvalidVideo:
    low, high = settings.video_min_seconds, settings.video_max_seconds
    return InvalidVideo(
        f"Expected a video of at most {high:g} s; {name} {_MEASURED[measured]} {seconds:.1f} s. "
        f"Record {low:g} to {high:g} seconds, turning your head slowly, and try again.",
        code="video.too_long",
        details={"name": name, "seconds": seconds, "max_seconds": high, "measured": measured},
    )


def _too_short(name: str, settings: Settings, seconds: float, measured: str) -> InvalidVideo:
    low, high = settings.video_min_seconds, settings.video_max_seconds
    verb = {"declared": "is declared as", "packets": "lasts", "decoded": "lasts"}[measured]
    return InvalidVideo(
        f"Expected a video of at least {low:g} s; {name} {verb} {seconds:.1f} s. "
        f"Record {low:g} to {high:g} seconds, turning your head slowly, and try again.",
        code="video.too_short",
        details={"name": name, "seconds": seconds, "min_seconds": low, "measured": measured},
    )


def _too_many_frames(name: str, settings: Settings, frames: int, measured: str) -> InvalidVideo:
    limit = settings.video_max_frames
    has = f"declares {frames:,}" if measured == "declared" else f"has more than {limit:,}"
    return InvalidVideo(
        f"Expected a video of at most {limit:,} frames; {name} {has}. "
        "Record at a normal frame rate (30 frames per second) and try again.",
        code="video.too_many_frames",
        details={"name": name, "frames": frames, "max_frames": limit, "measured": measured},
    )


def _timeout(name: str, clock: _Clock, at: float | None) -> InvalidVideo:
    where = f", at {at:.1f} s of video" if at is not None else ""
    return InvalidVideo(
        f"Expected a video that decodes within {clock.limit:g} s; decoding {name} took longer "
        f"(stopped after {clock.elapsed():.1f} s{where}). Record a shorter or lower-resolution "
        "video and try again.",
        code="video.decode_timeout",
        details={"name": name, "limit_seconds": clock.limit, "seconds": at},
    )


_RESOLUTIONS: tuple[tuple[int, int, str], ...] = (
    (3840, 2160, "4K"),
    (2560, 1440, "1440p"),
    (1920, 1080, "1080p"),
    (1280, 720, "720p"),
    (854, 480, "480p"),
)


def _resolution_within(limit: int) -> str:
    """The largest usual 16:9 camera setting whose frames fit ``limit`` pixels."""
    for width, height, label in _RESOLUTIONS:
        if width * height <= limit:
            return label
    return "a lower resolution"


def _human_pixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels" if n >= 100_000 else f"{n:,} pixels"


def _human_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"
