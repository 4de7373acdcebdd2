"""Building test videos with PyAV: small, fast, and exactly as bad as a test needs."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


def flat_frame(width: int, height: int, luma: int = 128) -> Any:
    frame = av.VideoFrame(width, height, "yuv420p")
    for i, plane in enumerate(frame.planes):
        plane.update(bytes([luma if i == 0 else 128]) * plane.buffer_size)
    return frame


def encode_video(
    fmt: str,
    codec: str,
    frames: Iterator[tuple[int, Any]] | list[tuple[int, Any]],
    *,
    size: tuple[int, int] = (64, 64),
    time_base: Fraction = Fraction(1, 1000),
    rate: int = 10,
    options: dict[str, str] | None = None,
    codec_options: dict[str, str] | None = None,
    rotation: int | None = None,
    path: Path | None = None,
) -> bytes:
    """Encode ``(pts, VideoFrame)`` pairs with ``codec`` into ``fmt``; the file's bytes."""
    target: Any = str(path) if path is not None else io.BytesIO()
    with av.open(target, "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, options=codec_options or {})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for pts, frame in frames:
            frame.pts = pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path.read_bytes() if path is not None else target.getvalue()


def repeated_packet(
    fmt: str,
    pts: list[int],
    *,
    time_base: Fraction,
    options: dict[str, str] | None = None,
    size: tuple[int, int] = (64, 64),
) -> bytes:
    """One H.264 keyframe encoded once and muxed at every ``pts``: thousands of frames or hours
    of timestamps cost a few milliseconds and a few bytes each."""
    out_buf = io.BytesIO()
    with av.open(out_buf, "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        frame = flat_frame(*size)
        frame.pts = 0
        packets = stream.encode(frame) + stream.encode()
        payload = bytes(packets[0])
        for p in pts:
            packet = av.Packet(payload)
            packet.stream = stream
            packet.pts = packet.dts = p
            packet.time_base = time_base
            packet.is_keyframe = True
            out.mux(packet)
    return out_buf.getvalue()


def remux(src: bytes, fmt: str, path: Path, options: dict[str, str] | None = None) -> bytes:
    """``src``'s video track copied (not re-encoded) into ``fmt`` at ``path``."""
    with (
        av.open(io.BytesIO(src)) as inp,
        av.open(str(path), "w", format=fmt, options=options or {}) as out,
    ):
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = copy
            out.mux(packet)
    return path.read_bytes()


def mkv_with_duration(data: bytes, seconds: float) -> bytes:
    """A Matroska file whose Info/Duration element (ms, 8-byte float) is rewritten."""
    at = data.find(b"\x44\x89\x88")  # Duration's id, then "8 bytes"
    assert at > 0, "the matroska muxer wrote no 8-byte Duration"
    start = at + 3
    return data[:start] + struct.pack(">d", seconds * 1000) + data[start + 8 :]


def small_header(src: bytes, path: Path) -> bytes:
    """``src``'s H.264 frames copied into a Matroska track whose header says 64x64."""
    with av.open(io.BytesIO(src)) as inp, av.open(str(path), "w") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        copy.codec_context.width = copy.codec_context.height = 64
        for packet in inp.demux(stream):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    return path.read_bytes()


def rgb_video(frames: list[np.ndarray], seconds_each: float, path: Path, fps: int = 10) -> bytes:
    """An H.264 MP4 showing each RGB image (same size, even sides) for ``seconds_each``."""
    height, width = frames[0].shape[:2]
    repeat = max(1, round(seconds_each * fps))
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        n = 0
        for rgb in frames:
            for _ in range(repeat):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = n
                n += 1
                out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path.read_bytes()
