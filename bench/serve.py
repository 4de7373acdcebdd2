"""The web service under load: ``python bench/serve.py [--requests 1000] [--memory-requests 5000]``

Builds a data dir in a temporary folder (the ORL demo gallery: ``build_demo_dataset`` ->
``import_images`` -> ``retrain``, face backbone), starts the real server as a subprocess
(``python -m lookalike.cli serve --home ... --port <free>``, rate limit off) and sends real
photo requests over loopback: ``POST /api/predictions`` with one multipart ``photo`` part, a
640x480 JPEG with one face from ``support.media.bench_photos`` (cycling over ``--photos``).

Rows:

- ``--requests`` requests at each ``--concurrency`` (default 1 and 8), after a warm-up; latency
  is measured by the client, per request (send -> whole answer read). RSS is the server's
  ``VmRSS`` (``/proc/<pid>/status``) before and after the row;
- with ``--tta on,off`` (default) the same rows again for a model trained and served with
  ``LOOKALIKE_FLIP_TTA=false`` (flip TTA is part of the embedding settings, so that is a
  model of its own, in a data dir of its own);
- a memory run: ``--memory-requests`` at concurrency 8 (flip TTA on), RSS sampled as it goes.

The client runs on the same cores as the server: one thread per concurrent request, each with
its own keep-alive ``httpx.Client``, the multipart bodies encoded once before timing. What it
costs is measured and printed (client CPU ms per request, and the rate the same client
reaches on ``GET /api/health``), as is the server's CPU ms per request (``/proc/<pid>/stat``).

``--stages`` (default on) also times the server path in this process, one photo at a time,
stage by stage (model pointer, decode, detect, align, embed, head, face crop JPEG, DB insert,
response model + JSON), on the same data dir, next to the whole request through
``TestClient`` (the difference: multipart parsing, routing, threadpool hops).

``--server-env NAME=VALUE`` passes extra variables to the server (e.g. ``MALLOC_ARENA_MAX``);
``--keep DIR`` builds the data dirs in DIR and keeps them (and the server logs). The load
average is printed: on a busy machine the numbers are low, not wrong. On a 2-core VM, runs
minutes apart differ by up to 15%; compare changes in alternating runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _support  # noqa: F401  (puts tests/ on sys.path for support.*)
import httpx
import numpy as np
from machine import load, pin_cores, print_machine
from support.media import bench_photos
from support.server import Server as TestServer
from support.server import free_port

from lookalike import demo_data
from lookalike.config import Settings

P50_TARGET_MS = 40.0  # concurrency 1, 640x480 JPEG with one face, 2 cores
RATE_TARGET = 30.0  # requests/s at concurrency 8, with 0 errors
MEMORY_TARGET_MB = 50.0  # RSS growth over --memory-requests (5,000) at concurrency 8
MEMORY_CONCURRENCY = 8
WARMUP = 20  # requests per row, before timing


# --- machine ---------------------------------------------------------------------------------


# --- the server ------------------------------------------------------------------------------


def build_home(home: Path, source: Path, flip_tta: bool) -> Settings:
    """Import the ORL demo gallery into ``home`` and train a face model on it."""
    from lookalike.data.importers import import_images
    from lookalike.retrain import retrain

    settings = Settings(home=home, backbone="face", flip_tta=flip_tta)
    gallery, _ = demo_data.build_demo_dataset(source)
    # The folded ONNX files do not depend on the data: reuse the bench cache's when present.
    cached = demo_data.default_cache_dir() / "bench-home" / "backbones"
    if cached.is_dir() and not (home / "backbones").exists():
        shutil.copytree(cached, home / "backbones")
    start = time.perf_counter()
    report = import_images(gallery, settings)
    result = retrain(settings, strict=False).report
    print(
        f"data    : {home} (flip TTA {'on' if flip_tta else 'off'}): {report.added} ORL photos"
        f" imported, model {result.version} ({result.head}), test accuracy"
        f" {result.metrics['accuracy']}, built in {time.perf_counter() - start:.1f} s"
    )
    return settings


@dataclass
class Server(TestServer):
    """The tests' server process (``support.server``), with what the bench measures of it."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads)."""
        text = Path(f"/proc/{self.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


def start_server(settings: Settings, logs: Path, env_extra: dict[str, str]) -> Server:
    port = free_port()
    log = logs / f"server-{port}.log"
    env = {
        **os.environ,
        "LOOKALIKE_RATE_LIMIT_PER_MINUTE": "0",
        "LOOKALIKE_FLIP_TTA": "true" if settings.flip_tta else "false",
        **env_extra,
    }
    cmd = [sys.executable, "-m", "lookalike.cli", "serve", "--home", str(settings.home)]
    cmd += ["--port", str(port), "--host", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()}")
            try:
                r = client.get(server.url + "/api/health")
                if r.status_code == 200 and r.json().get("model"):
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"the server did not become healthy:\n{log.read_text()}")
            time.sleep(0.1)


# --- the client ------------------------------------------------------------------------------


BOUNDARY = "lookalike-bench-7f3a9c"


def multipart_body(photo: Path) -> bytes:
    """One ``photo`` part, encoded once (the client must not be what is measured)."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="photo"; filename="{photo.name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + photo.read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode()


HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    errors: int
    latencies_ms: list[float]
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float
    rss_before: float
    rss_after: float
    error_samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.wall_s

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def run_load(
    server: Server,
    name: str,
    bodies: list[bytes],
    requests: int,
    concurrency: int,
    *,
    path: str = "/api/predictions",
    warmup: int = WARMUP,
    samples: list[tuple[int, float]] | None = None,
) -> Result:
    """``requests`` requests, ``concurrency`` at a time; each worker keeps one connection.

    With ``samples``, ``(requests done, server RSS MB)`` is appended about every 500 requests.
    """
    url = server.url + path
    clients = [httpx.Client(timeout=60) for _ in range(concurrency)]

    def send(client: httpx.Client, i: int) -> tuple[float, str | None]:
        start = time.perf_counter()
        try:
            if bodies:
                r = client.post(url, content=bodies[i % len(bodies)], headers=HEADERS)
                ok = r.status_code == 201
            else:
                r = client.get(url)
                ok = r.status_code == 200
        except httpx.TransportError as exc:  # refused, reset, timed out: an error, counted
            return (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - start) * 1000
        return elapsed, None if ok else f"{r.status_code} {r.text[:200]}"

    try:
        # Warm-up: every connection opened, every code path taken once.
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda i: send(clients[i % concurrency], i), range(warmup)))

        counter = itertools.count()
        latencies: list[list[float]] = [[] for _ in range(concurrency)]
        errors: list[str] = []
        next_sample = itertools.count(500, 500)
        sample_at = [next(next_sample)]
        sample_lock = threading.Lock()

        def worker(w: int) -> None:
            client = clients[w]
            while (i := next(counter)) < requests:
                elapsed, error = send(client, i)
                latencies[w].append(elapsed)
                if error is not None:
                    errors.append(error)
                if samples is not None and i + 1 >= sample_at[0]:
                    with sample_lock:
                        if i + 1 >= sample_at[0]:
                            samples.append((i + 1, server.rss_mb()))
                            sample_at[0] = next(next_sample)

        rss_before = server.rss_mb()
        server_cpu = server.cpu_seconds()
        client_cpu = time.process_time()
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(worker, w) for w in range(concurrency)]:
                future.result()
        wall = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        server_cpu = server.cpu_seconds() - server_cpu
        rss_after = server.rss_mb()
    finally:
        for client in clients:
            client.close()
    flat = [x for per in latencies for x in per]
    return Result(
        name,
        concurrency,
        requests,
        len(errors),
        flat,
        wall,
        client_cpu,
        server_cpu,
        rss_before,
        rss_after,
        errors[:3],
    )


def check_answer(server: Server, body: bytes) -> dict[str, Any]:
    """One request, its answer read in full: the bench must be timing real predictions."""
    r = httpx.post(server.url + "/api/predictions", content=body, headers=HEADERS, timeout=60)
    if r.status_code != 201:
        raise RuntimeError(f"prediction failed: {r.status_code} {r.text[:500]}")
    answer: dict[str, Any] = r.json()
    if answer["faces_found"] != 1 or not answer["face_crop"]:
        raise RuntimeError(f"unexpected answer: {json.dumps(answer)[:500]}")
    return answer


# --- stages, in this process -----------------------------------------------------------------


def stage_breakdown(settings: Settings, photos: list[Path], repeat: int) -> dict[str, float]:
    """Milliseconds per request of each stage of the server path, one photo at a time.

    The same work as ``services.predictions.answer_and_record`` and ``api.answers`` plus what
    FastAPI does with its return value,
    on the same objects ``create_app`` builds (best of ``repeat`` passes over ``photos``).
    """
    from fastapi.encoders import jsonable_encoder
    from fastapi.testclient import TestClient

    from lookalike.api import create_app
    from lookalike.api.answers import prediction_public
    from lookalike.api.state import app_state
    from lookalike.services.predictions import RecordedPrediction, new_record
    from lookalike.vision.backbones import Analysis
    from lookalike.vision.images import decode_image
    from lookalike.vision.quality import measure

    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 0}))
    best: dict[str, float] = {}
    with TestClient(app) as client:
        state = app_state(app)
        predictor = state.predictor
        model, backbones = predictor._load()
        backbone = backbones.wide  # what a lone request uses
        bodies = [multipart_body(p) for p in photos]
        for _ in range(repeat):
            totals: dict[str, float] = {}

            def tick(stage: str, since: float, totals: dict[str, float] = totals) -> float:
                now = time.perf_counter()
                totals[stage] = totals.get(stage, 0.0) + now - since
                return now

            for path, body in zip(photos, bodies, strict=True):
                data = path.read_bytes()
                t = time.perf_counter()
                predictor._load()
                t = tick("model pointer", t)
                image = decode_image(data, settings, name="photo 0")
                t = tick("decode", t)
                faces = backbone.detect(image.rgb)
                t = tick("detect", t)
                crop = backbone.align(image.rgb, faces[0])
                t = tick("align", t)
                query = backbone.embed_crops([crop])[0]
                t = tick("embed", t)
                analysis = Analysis(query, faces, 0, crop)
                used = (0, image, analysis, measure(crop, faces[0]))
                prediction = predictor._answer(model, query, used, 1, 1, [], t)
                t = tick("head + ranking", t)
                row = new_record(prediction, "api")
                with state.sessions() as session, session.begin():
                    session.add(row)
                t = tick("DB insert", t)
                recorded = RecordedPrediction(prediction, row, image, "", "", None)
                validated = prediction_public(recorded, None)
                json.dumps(jsonable_encoder(validated)).encode()
                t = tick("answer (face JPEGs) + response model + JSON", t)
                r = client.post("/api/predictions", content=body, headers=HEADERS)
                assert r.status_code == 201, r.text
                tick("whole request (TestClient)", t)
            for stage, total in totals.items():
                ms = total / len(photos) * 1000
                best[stage] = min(best.get(stage, ms), ms)
    return best


# --- main ------------------------------------------------------------------------------------


def verdicts(result: Result) -> list[str]:
    out = []
    if result.concurrency == 1:
        p50 = result.pct(50)
        verdict = "PASS" if p50 <= P50_TARGET_MS else "FAIL"
        out.append(f"p50 {p50:.1f}<={P50_TARGET_MS:.0f} {verdict}")
    else:
        ok = result.rate >= RATE_TARGET and result.errors == 0
        out.append(f"{result.rate:.1f}>={RATE_TARGET:.0f}/s, 0 err {'PASS' if ok else 'FAIL'}")
    return out


HEADER = (
    f"{'model':<14} {'conc':>4} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7}"
    f" {'p99 ms':>7} {'req/s':>6} {'srv cpu':>7} {'cli cpu':>7} {'RSS MB':>13}  target"
)


def print_row(r: Result) -> None:
    rss = f"{r.rss_before:.0f}->{r.rss_after:.0f}"
    target = "; ".join(verdicts(r)) if r.name != "health" else "(client check)"
    print(
        f"{r.name:<14} {r.concurrency:>4} {r.requests:>8} {r.errors:>6} {r.pct(50):>7.1f}"
        f" {r.pct(95):>7.1f} {r.pct(99):>7.1f} {r.rate:>6.1f}"
        f" {r.server_cpu_s / r.requests * 1000:>7.1f} {r.client_cpu_s / r.requests * 1000:>7.2f}"
        f" {rss:>13}  {target}",
        flush=True,
    )
    for sample in r.error_samples:
        print(f"    error: {sample}")


def print_memory(mem: Result, samples: list[tuple[int, float]]) -> None:
    growth = mem.rss_after - mem.rss_before
    ok = growth < MEMORY_TARGET_MB and mem.errors == 0
    trail = ", ".join(f"{n}: {rss:.0f}" for n, rss in samples)
    print(
        f"memory: {mem.requests} requests at concurrency {mem.concurrency} ({mem.name}),"
        f" {mem.errors} errors, {mem.rate:.1f} req/s, p50 {mem.pct(50):.1f} ms, p99"
        f" {mem.pct(99):.1f} ms\n  server RSS MB by requests done: 0: {mem.rss_before:.0f},"
        f" {trail}\n  RSS growth {growth:+.1f} MB (target < {MEMORY_TARGET_MB:.0f} MB over"
        f" {mem.requests}) {'PASS' if ok else 'FAIL'}",
        flush=True,
    )
    for sample in mem.error_samples:
        print(f"    error: {sample}")


def print_stages(name: str, parts: dict[str, float]) -> None:
    whole = parts.pop("whole request (TestClient)")
    total = sum(parts.values())
    print(f"server path, {name}, in process, one photo at a time (ms/request, best of 3):")
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    print(
        f"  sum of stages {total:.1f} ms; the whole request through TestClient {whole:.1f} ms"
        f" (multipart parsing, routing, threadpool hops: {whole - total:+.1f} ms)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="per row (default 1000)")
    parser.add_argument(
        "--memory-requests", type=int, default=5000, help="memory run, 0 skips (default 5000)"
    )
    parser.add_argument("--concurrency", default="1,8", help="comma-separated (default 1,8)")
    parser.add_argument("--photos", type=int, default=50, help="distinct photos (default 50)")
    parser.add_argument("--tta", default="on,off", help="flip TTA variants (default on,off)")
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin to (default 2)")
    parser.add_argument(
        "--stages", action=argparse.BooleanOptionalAction, default=True, help="stage timing"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for the server (repeatable)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="build the data dirs here and keep them"
    )
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    variants = [v.strip() == "on" for v in args.tta.split(",") if v.strip()]
    server_env = dict(item.split("=", 1) for item in args.server_env)

    cpus = pin_cores(args.cores)
    print_machine(
        cpus,
        [
            "onnxruntime",
            "opencv-python-headless",
            "numpy",
            "fastapi",
            "uvicorn",
            "httpx",
            "sqlalchemy",
        ],
    )
    photos = bench_photos(demo_data.default_cache_dir(), args.photos)
    bodies = [multipart_body(p) for p in photos]
    sizes = [p.stat().st_size for p in photos]
    if server_env:
        print(f"server environment: {server_env}")
    print(
        f"photos  : {len(photos)} x 640x480 JPEG with one face ({min(sizes) // 1024}-"
        f"{max(sizes) // 1024} KiB) from {photos[0].parent}; {args.requests} requests per row"
    )

    tmp = tempfile.TemporaryDirectory(prefix="lookalike-serve-bench-")
    root = args.keep or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    try:
        for tta in variants:
            name = "face" if tta else "face no-TTA"
            home = root / ("home" if tta else "home-notta")
            settings = build_home(home, root / "demo-source", tta)
            server = start_server(settings, root, server_env)
            try:
                answer = check_answer(server, bodies[0])
                print(
                    f"server  : pid {server.pid} on {server.url}, model"
                    f" {answer['model_version']}, RSS {server.rss_mb():.0f} MB after start;"
                    f" first answer {answer['best_label']!r} ({answer['latency_ms']} ms)\n"
                )
                print(HEADER)
                print("-" * (len(HEADER) + 26), flush=True)
                if tta:
                    # What the client alone can do, on the same cores: far above the
                    # prediction rates means the client is not what limits them.
                    for c in concurrencies:
                        print_row(
                            run_load(server, "health", [], args.requests, c, path="/api/health")
                        )
                for c in concurrencies:
                    print_row(run_load(server, name, bodies, args.requests, c))
                print(
                    "srv cpu / cli cpu: CPU ms per request of the server process / of this"
                    " client (all threads);\nRSS: the server's VmRSS before -> after the row"
                    f" (after a warm-up of {WARMUP} requests).\n"
                )
                if tta and args.memory_requests > 0:
                    samples: list[tuple[int, float]] = []
                    mem = run_load(
                        server,
                        name,
                        bodies,
                        args.memory_requests,
                        MEMORY_CONCURRENCY,
                        samples=samples,
                    )
                    print_memory(mem, samples)
                    print()
            finally:
                server.stop()
            if args.stages:
                print_stages(name, stage_breakdown(settings, photos[:20], 3))
                print()
    finally:
        if args.keep is None:
            tmp.cleanup()
    print(f"load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
