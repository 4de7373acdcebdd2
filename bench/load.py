"""The production stack under load and under faults: ``python bench/load.py [--seconds 60]``

Two app processes (``lookalike serve`` on two loopback ports, one worker each, no load
balancer: the client sends request ``i`` to server ``i % 2``) over PostgreSQL, Redis (the job
queue and the rate limit, which every prediction consults) and an S3 server (moto in server
mode), all throwaway servers on loopback (``tests/support/``: ``pg.py``, ``redis_server.py``,
``faults.py``). The model is the tests' small one (ORL people s1-s6, photos 1-6, real
``face`` backbone). Requests are real predictions: ``POST /api/predictions`` with one
640x480 JPEG with one face (``support.media.bench_photos``), every ``--consent-every``-th
with consent, so its photo goes to the S3 server.

Three scenarios of ``--seconds`` each, ``--concurrency`` requests in flight (threads, one
keep-alive client each):

- **steady**: nothing breaks;
- **postgres restart**: a third of the way in, PostgreSQL is stopped (``pg_ctl stop -m fast``:
  sessions cut; ``--pg-mode immediate``: as if it crashed), stays down ``--pg-down`` seconds,
  and is started again (it runs with ``synchronous_commit`` on, as in production);
- **redis down**: a third of the way in, Redis is stopped for ``--redis-down`` seconds (at most
  half the scenario) and started again, empty.

Per scenario: requests/s, latency percentiles of the 201 answers (client-side, send -> whole
answer read), the answers by status and error code, the errors sent after the fault was over,
and the audit of what was logged: the prediction rows written during the scenario against the
201 answers (by prediction id: no answer without its row, no row without its answer) and the
photos kept in the bucket against the rows that name them.

The client, the servers, PostgreSQL, Redis and the S3 server share the machine's cores; the
load average is printed before and after: on a busy machine the rates are low, not wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import _support  # noqa: F401  (puts tests/ on sys.path for support.*)
import numpy as np
from machine import load, print_machine
from support.api import IMPORTED, PEOPLE, api_settings
from support.faults import Audit, Load, Outcome, S3Server, audit, bodies, logged
from support.media import bench_photos
from support.pg import PostgresCluster
from support.redis_server import RedisServer
from support.server import Server, running_server
from support.training import class_folders

from lookalike import demo_data
from lookalike.config import Settings

PREFIX = "bench-load"  # the objects' prefix in the bucket
RATE_LIMIT = 1_000_000  # per minute: never reached, but every request asks Redis
WARMUP = 2  # requests per concurrent client, before the first scenario


def build_home(root: Path) -> Path:
    """The tests' small model (``support.api.trained_home``): ORL s1-s6, photos 1-6."""
    from lookalike.data.importers import import_images
    from lookalike.retrain import retrain

    started = time.perf_counter()
    orl = demo_data.orl_people()
    source = class_folders(root / "source", {p: orl[p][IMPORTED] for p in PEOPLE})
    home = root / "home"
    settings = Settings(home=home, backbone="face")
    report = import_images(source, settings)
    result = retrain(settings, strict=False).report
    print(
        f"model   : {report.added} ORL photos of {len(PEOPLE)} people, {result.version}"
        f" ({result.head}), built in {time.perf_counter() - started:.1f} s"
    )
    return home


@dataclass
class Scenario:
    name: str
    outcomes: list[Outcome]
    seconds: float
    audit: Audit
    fault: tuple[float, float] | None  # (began, over), load time
    note: str

    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 201]

    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 201]

    def pct(self, q: float) -> float:
        ms = [o.ms for o in self.ok()]
        return float(np.percentile(ms, q)) if ms else float("nan")

    def errors_outside(self) -> int:
        """Errors of requests answered before the fault began or sent after it was over."""
        if self.fault is None:
            return len(self.errors())
        began, over = self.fault
        return sum(o.ended < began or o.started > over for o in self.errors())

    def codes(self) -> str:
        counts = Counter(f"{o.status} {o.code}".strip() for o in self.errors())
        return ", ".join(f"{n} x {k}" for k, n in counts.most_common()) or "-"


def run_scenario(
    name: str,
    load: Load,
    seconds: float,
    database: str,
    s3: S3Server,
    fault: Callable[[], str] | None = None,
) -> Scenario:
    before = logged(database)
    keys_before = s3.keys(f"{PREFIX}/consented")
    load.start()
    window = None
    note = ""
    if fault is not None:
        time.sleep(seconds / 3)
        began = load.now()
        note = fault()
        window = (began, load.now())
    time.sleep(max(0.0, seconds - load.now()))
    outcomes = load.stop()
    wall = max(o.ended for o in outcomes) if outcomes else seconds
    after = logged(database)
    keys = s3.keys(f"{PREFIX}/consented") - keys_before
    new_rows = after.since(before)
    checked = audit(outcomes, new_rows, {f"consented/{k}" for k in keys})
    return Scenario(name, outcomes, wall, checked, window, note)


def recovery(scenario: Scenario, servers: int) -> str:
    """When, after the fault, every server answered 201 again, and the last error."""
    if scenario.fault is None:
        return ""
    began, over = scenario.fault
    firsts = []
    for s in range(servers):
        after = [o.ended for o in scenario.ok() if o.server == s and o.started >= over]
        firsts.append(min(after) - over if after else float("nan"))
    errors = scenario.errors()
    last = f"{max(o.ended for o in errors) - over:+.1f} s" if errors else "none"
    retry = sorted({o.retry_after or "-" for o in errors if o.status == 503})
    return (
        f"fault {began:.1f}-{over:.1f} s ({scenario.note}); every server answered 201 again"
        f" {max(firsts):.1f} s after it; last error answered at {last} from its end;"
        f" Retry-After on the 503s: {', '.join(retry) or '-'}"
    )


def print_table(scenarios: list[Scenario], concurrency: int) -> None:
    print(
        f"\n| scenario | s | requests | req/s | p50 ms | p95 ms | p99 ms | 201 | errors"
        f" | errors outside the fault | rows | rows == 201s | missing / extra rows"
        f" | photos kept | orphan / lost photos |\n|{'---|' * 15}"
    )
    for s in scenarios:
        a = s.audit
        kept = sum(1 for o in s.ok() if o.consent)
        print(
            f"| {s.name} | {s.seconds:.0f} | {len(s.outcomes)} | {len(s.outcomes) / s.seconds:.1f}"
            f" | {s.pct(50):.0f} | {s.pct(95):.0f} | {s.pct(99):.0f} | {a.successes}"
            f" | {len(s.errors())} | {s.errors_outside()} | {a.rows}"
            f" | {'yes' if a.rows == a.successes else 'NO'} | {a.missing} / {a.extra}"
            f" | {kept} | {a.orphans} / {a.lost} |"
        )
    print(f"\nconcurrency {concurrency}; latency percentiles of the 201 answers (client side)")
    for s in scenarios:
        line = recovery(s, 2)
        print(f"- {s.name}: errors {s.codes()}" + (f"; {line}" if line else ""))
        a = s.audit
        verdict = "PASS" if a.clean and s.errors_outside() == 0 else "FAIL"
        if s.name == "redis down" and s.errors():
            verdict = "FAIL"
        if verdict == "FAIL" and s.fault and not (a.missing or a.orphans or s.errors_outside()):
            # A row no 201 answered: the server went down between writing it and saying so.
            in_flight = sum(1 for o in s.errors() if o.started <= s.fault[0])
            if a.extra <= in_flight and a.lost <= a.extra and s.name != "redis down":
                verdict = f"PASS ({a.extra} commit(s) in doubt: written, answered 503)"
        print(f"  {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="per scenario (default 60)")
    parser.add_argument("--concurrency", type=int, default=32, help="default 32")
    parser.add_argument("--pg-down", type=float, default=3, help="seconds (default 3)")
    parser.add_argument(
        "--pg-mode",
        choices=["fast", "immediate"],
        default="fast",
        help="pg_ctl stop mode: fast (sessions cut) or immediate (a crash; default fast)",
    )
    parser.add_argument("--redis-down", type=float, default=10, help="seconds (default 10)")
    parser.add_argument("--photos", type=int, default=50, help="distinct photos (default 50)")
    parser.add_argument(
        "--consent-every", type=int, default=4, help="every n-th with consent (0: none)"
    )
    parser.add_argument(
        "--only", default="steady,postgres,redis", help="scenarios (default all three)"
    )
    args = parser.parse_args(argv)
    wanted = {w.strip() for w in args.only.split(",")}
    redis_down = min(args.redis_down, args.seconds / 2)

    cpus = sorted(os.sched_getaffinity(0))
    print_machine(cpus, ["onnxruntime", "fastapi", "uvicorn", "httpx", "psycopg", "redis", "moto"])
    photos = bench_photos(demo_data.default_cache_dir(), args.photos)
    payloads = bodies(photos, args.consent_every)
    print(
        f"photos  : {len(photos)} x 640x480 JPEG with one face from {photos[0].parent};"
        + (f" consent on 1 in {args.consent_every}" if args.consent_every else " no consent")
    )
    if redis_down < args.redis_down:
        print(f"redis   : down {redis_down:.0f} s, not {args.redis_down:.0f}: half the scenario")

    with tempfile.TemporaryDirectory(prefix="lookalike-load-bench-") as tmp:
        root = Path(tmp)
        home = build_home(root)
        cluster = PostgresCluster(durable_commits=True)  # a commit acknowledged is kept
        database = cluster.start()  # its own cluster: restarted mid-run, thrown away after
        try:
            with RedisServer() as redis, S3Server() as s3:
                settings = api_settings(home, database, redis_url=redis.url)
                shared = {
                    "redis_url": redis.url,
                    "secret_key": settings.secret_key,
                    "rate_limit_per_minute": str(RATE_LIMIT),
                    **s3.settings(PREFIX),
                }
                logs = root / "logs"
                logs.mkdir()
                with (
                    running_server(settings, logs, workers=1, **shared) as one,
                    running_server(settings, logs, workers=1, **shared) as other,
                ):
                    servers: list[Server] = [one, other]
                    urls = [s.url for s in servers]
                    print(
                        f"servers : {', '.join(urls)} (lookalike serve, 1 worker each);"
                        f" PostgreSQL on :{cluster.port}, Redis on :{redis.port},"
                        f" S3 on :{s3.port}; load average {load()}",
                        flush=True,
                    )

                    def new_load() -> Load:
                        return Load(urls, payloads, args.concurrency)

                    warm = new_load().start()
                    while len(warm.outcomes) < WARMUP * args.concurrency:
                        time.sleep(0.1)
                    warmed = warm.stop()
                    print(
                        f"warm-up : {len(warmed)} requests,"
                        f" {Counter(o.status for o in warmed)} by status",
                        flush=True,
                    )

                    def restart_postgres() -> str:
                        cluster.pause(args.pg_mode)
                        time.sleep(args.pg_down)
                        cluster.resume()
                        return f"pg_ctl stop -m {args.pg_mode}, down {args.pg_down:.0f} s, start"

                    def stop_redis() -> str:
                        redis.stop()
                        time.sleep(redis_down)
                        redis.start()
                        return f"stopped {redis_down:.0f} s, started again empty"

                    plan: list[tuple[str, str, Callable[[], str] | None]] = [
                        ("steady", "steady", None),
                        ("postgres", "postgres restart", restart_postgres),
                        ("redis", "redis down", stop_redis),
                    ]
                    scenarios = []
                    for key, name, fault in plan:
                        if key not in wanted:
                            continue
                        scenario = run_scenario(name, new_load(), args.seconds, database, s3, fault)
                        scenarios.append(scenario)
                        print(
                            f"{name:<8}: {len(scenario.outcomes)} requests,"
                            f" {scenario.codes()}; load average {load()}",
                            flush=True,
                        )
                    print_table(scenarios, args.concurrency)
                    for server in servers:
                        text = server.log.read_text(errors="replace")
                        internal = text.count('HTTP/1.1" 500')
                        print(f"server {server.url}: {internal} answers 500 in its access log")
        finally:
            cluster.stop()
    print(f"load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
