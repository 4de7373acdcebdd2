"""The admin dashboard's endpoints on a large prediction log: ``python bench/analytics.py``

Builds a SQLite prediction log of ``--rows`` (default 1,000,000) predictions in a temporary
data dir (``init_db`` -> one ``INSERT ... SELECT`` over a recursive CTE per 100,000 rows; the
triggers keep the hourly rollups as they go), spread evenly over the last ``--days`` (90)
days, 40 classes (skewed: the first classes are answered far more often), 4 model versions
one after the other (with registry rows: accuracy, reference, promotions), 8% "no strong
match", 2% no face, 3% several faces, latencies 25-65 ms with a 1% tail up to 265 ms, 5%
feedback (2% naming a class), each row with the full 40-class probability list.

Then every dashboard endpoint is asked through the real app (``create_app`` + TestClient,
admin token, the ``--timezone`` setting, default Europe/Paris: a DST change falls inside the
log) for the last 30 days (the dashboard's default) and for all time: one warm-up request,
then the median of ``--repeat`` (5). Target: every answer under 300 ms. The first request's
time is shown too: it also pays for connecting, and for looking up the latency percentiles
of past days, which later requests reuse. Hourly volume is asked for the 30 days only:
hourly buckets cover at most 31 days (a 422 beyond).

``--keep DIR`` builds (or reuses) the log in DIR. The load average is printed: on a busy
machine the numbers are high, not wrong.

``--backend postgresql`` measures the same on PostgreSQL: a throwaway cluster
(``tests/support/pg.py``: initdb in a temporary directory, the server's default memory
settings, durability off; ``--database-url`` names an existing database instead, reused when
its log has rows), the schema migrated as the app does (``init_db``), then the rows generated
in Python (numpy, the same distributions, ``BATCH`` rows at a time) and loaded with ``COPY``.
``--rollups rebuild`` (the default) loads with the rollup trigger disabled, then fills the
rollups with one ``INSERT ... SELECT ... GROUP BY`` per table (migration 0003's backfill, as
when the rollups were created) and enables the trigger again; ``--rollups trigger`` keeps the
trigger on, as ``lookalike restore`` does: about 0.5 ms a row on 2 busy cores (200,000 rows
in 97 s, against 15 s of COPY and 8 s of rebuild), over an hour for 10M rows. ``VACUUM
ANALYZE`` follows, as autovacuum would after a load. ``--probabilities K`` keeps only the K
most probable classes in each row's list (default: all 40, as the app logs them; about 1.8
kB a row: 10M rows would take about 25 GB).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _support  # noqa: F401  (puts tests/ on sys.path for support.*)
import numpy as np
from machine import cpu_model, load, pkg

import lookalike.db
from lookalike import accounts
from lookalike.api import create_app
from lookalike.config import Settings
from lookalike.db import (
    ModelAlias,
    ModelEvent,
    ModelVersion,
    init_db,
    make_engine,
    session_factory,
)
from lookalike.db.models import LATENCY_EDGES_MS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TARGET_MS = 300.0
CLASSES = 40
VERSIONS = 4
BATCH = 100_000
ENDPOINTS = [
    ("classes", "/api/analytics/classes", {}),
    ("accuracy", "/api/analytics/accuracy", {}),
    ("volume (day)", "/api/analytics/volume", {"bucket": "day"}),
    ("volume (week)", "/api/analytics/volume", {"bucket": "week"}),
    ("volume (month)", "/api/analytics/volume", {"bucket": "month"}),
    ("volume (hour)", "/api/analytics/volume", {"bucket": "hour"}),
    ("heatmap", "/api/analytics/heatmap", {}),
    ("latency (by day)", "/api/analytics/latency", {"by": "day"}),
    ("latency (by class)", "/api/analytics/latency", {"by": "class"}),
    ("confidence", "/api/analytics/confidence", {}),
    ("feedback", "/api/analytics/feedback", {}),
    ("drift", "/api/analytics/drift", {}),
    ("latency (by day), one class", "/api/analytics/latency", {"by": "day", "label": "class-05"}),
    ("confidence, one class", "/api/analytics/confidence", {"label": "class-05"}),
    ("drift, one version", "/api/analytics/drift", {"model_version": "m0004"}),
]


# --- the log -------------------------------------------------------------------------------


def _latency_bin(column: str) -> str:
    branches = " ".join(f"WHEN {column} < {e} THEN {i}" for i, e in enumerate(LATENCY_EDGES_MS))
    return f"CASE {branches} ELSE {len(LATENCY_EDGES_MS)} END"


def insert_sql(start: int, seconds: float, total: int) -> str:
    """One batch: rows ``:first`` to ``:last`` - 1 of ``total`` (SQLite). The random draws
    are materialised once per row, so every column of a row agrees with the others."""
    draws = ", ".join(f"(abs(random()) % 1000000) / 1000000.0 AS u{k}" for k in range(1, 12))
    label = f"printf('class-%02d', CAST({CLASSES} * u1 * u1 AS INTEGER))"
    said = f"printf('class-%02d', CAST({CLASSES} * u11 AS INTEGER))"
    return f"""
WITH RECURSIVE s(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM s WHERE i + 1 < :last),
u AS MATERIALIZED (SELECT i, {draws} FROM s),
r AS MATERIALIZED (
  SELECT u.*,
    CASE WHEN u3 < 0.02 THEN 'no_face' WHEN u3 < 0.10 THEN 'no_strong_match'
      ELSE 'match' END AS o,
    {label} AS best,
    {start} + i * {seconds / total!r} + 1800 * u2 AS t
  FROM u
),
v AS MATERIALIZED (
  SELECT r.*,
    CASE WHEN o = 'no_face' THEN 8 + 5 * u7
      ELSE 28 + 8 * (u7 + u8 + u9) + CASE WHEN u6 < 0.01 THEN 200 * u5 ELSE 0 END
    END AS lat
  FROM r
)
INSERT INTO predictions (
  id, created_at, model_version, label, best_label, probability, probabilities, match_score,
  no_strong_match, outcome, faces_found, face_index, frames_used, latency_ms, latency_bin,
  client, consent, feedback, feedback_label, feedback_at
)
SELECT
  printf('%032x', i),
  strftime('%Y-%m-%d %H:%M:%f', t, 'unixepoch') || '000',
  printf('m%04d', 1 + i * {VERSIONS} / {total}),
  CASE WHEN o = 'match' THEN best END,
  CASE WHEN o <> 'no_face' THEN best END,
  CASE WHEN o = 'match' THEN 0.4 + 0.6 * u4 WHEN o = 'no_strong_match' THEN 0.15 + 0.5 * u4 END,
  CASE WHEN o = 'no_face' THEN '[]' ELSE (SELECT json FROM bench_probabilities) END,
  CASE WHEN o = 'match' THEN 0.5 + 0.4 * u5 WHEN o = 'no_strong_match' THEN 0.1 + 0.35 * u5 END,
  o = 'no_strong_match',
  o,
  CASE WHEN o = 'no_face' THEN 0 WHEN u6 > 0.97 THEN 2 ELSE 1 END,
  CASE WHEN o = 'no_face' THEN NULL ELSE 0 END,
  CASE WHEN o = 'no_face' THEN 0 ELSE 1 END,
  lat,
  {_latency_bin("lat")},
  CASE WHEN u10 < 0.7 THEN 'web' ELSE 'api' END,
  0,
  CASE WHEN o = 'no_face' THEN NULL WHEN u10 < 0.03 THEN 'like' WHEN u10 < 0.05 THEN 'dislike'
    END,
  CASE WHEN o <> 'no_face' AND u10 >= 0.03 AND u10 < 0.05 AND u11 < 0.4 THEN {said} END,
  CASE WHEN o <> 'no_face' AND u10 < 0.05
    THEN strftime('%Y-%m-%d %H:%M:%f', t + 30, 'unixepoch') || '000' END
FROM v
"""


def build_log(path: Path, rows: int, days: int) -> tuple[float, datetime]:
    """The prediction log (seconds it took, its last day)."""
    url = f"sqlite:///{path}"
    init_db(url)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    probabilities = json.dumps(
        [{"label": f"class-{j:02d}", "probability": round(0.9 / 1.2**j, 4)} for j in range(CLASSES)]
    )
    began = time.perf_counter()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TEMP TABLE bench_probabilities (json TEXT)")
        conn.execute("INSERT INTO bench_probabilities VALUES (?)", (probabilities,))
        sql = insert_sql(int(start.timestamp()), days * 86400.0, rows)
        for first in range(0, rows, BATCH):
            conn.execute(sql, {"first": first, "last": min(rows, first + BATCH)})
            conn.commit()
            print(
                f"  {min(rows, first + BATCH):>9,} rows, {time.perf_counter() - began:.0f} s",
                flush=True,
            )
    add_registry(url, start, end)
    return time.perf_counter() - began, end


# --- the log on PostgreSQL -----------------------------------------------------------------

COPY_COLUMNS = (
    "id, created_at, model_version, label, best_label, probability, probabilities, match_score,"
    " no_strong_match, outcome, faces_found, face_index, frames_used, latency_ms, latency_bin,"
    " client, consent, feedback, feedback_label, feedback_at"
)
NULL = "\\N"


def _pick(condition: Any, value: list[str], other: str | list[str] = NULL) -> list[str]:
    """``value`` where ``condition`` holds, else ``other`` (a constant or another list)."""
    if isinstance(other, str):
        return [v if c else other for c, v in zip(condition.tolist(), value, strict=True)]
    return [v if c else o for c, v, o in zip(condition.tolist(), value, other, strict=True)]


def _floats(values: Any) -> list[str]:
    return [repr(v) for v in values.tolist()]


def _timestamps(seconds: Any) -> list[str]:
    micro = np.round(seconds * 1e6).astype("int64").astype("datetime64[us]")
    return [f"{v}+00" for v in np.datetime_as_string(micro, unit="us").tolist()]


def copy_rows(
    first: int, last: int, start: int, seconds: float, total: int, probabilities: str
) -> str:
    """Rows ``first`` to ``last`` - 1 of ``total`` as COPY text: the same draws and the same
    columns as ``insert_sql`` (uniforms at a millionth, as SQLite's ``random() % 1000000``)."""
    rng = np.random.default_rng(first)
    i = np.arange(first, last, dtype=np.int64)
    u = rng.integers(0, 1_000_000, size=(12, len(i))) / 1_000_000.0  # u[1] .. u[11]
    no_face, match = u[3] < 0.02, u[3] >= 0.10
    weak = ~no_face & ~match
    face = ~no_face
    classes = [f"class-{j:02d}" for j in range(CLASSES)]
    best = [classes[j] for j in (CLASSES * u[1] * u[1]).astype(np.int64).tolist()]
    said = [classes[j] for j in (CLASSES * u[11]).astype(np.int64).tolist()]
    t = start + i * (seconds / total) + 1800 * u[2]
    tail = np.where(u[6] < 0.01, 200 * u[5], 0.0)
    lat = np.where(no_face, 8 + 5 * u[7], 28 + 8 * (u[7] + u[8] + u[9]) + tail)
    latency_bin = np.searchsorted(np.asarray(LATENCY_EDGES_MS, dtype=float), lat, side="right")
    probability = np.where(match, 0.4 + 0.6 * u[4], 0.15 + 0.5 * u[4])
    match_score = np.where(match, 0.5 + 0.4 * u[5], 0.1 + 0.35 * u[5])
    outcome = np.where(no_face, "no_face", np.where(match, "match", "no_strong_match"))
    faces = np.where(no_face, 0, np.where(u[6] > 0.97, 2, 1))
    feedback = np.where(u[10] < 0.03, "like", "dislike")
    fed = face & (u[10] < 0.05)
    named = face & (u[10] >= 0.03) & (u[10] < 0.05) & (u[11] < 0.4)
    n = len(i)
    columns = [
        [f"{k:032x}" for k in i.tolist()],
        _timestamps(t),
        [f"m{v:04d}" for v in (1 + i * VERSIONS // total).tolist()],
        _pick(match, best),
        _pick(face, best),
        _pick(face, _floats(probability)),
        _pick(face, [probabilities] * n, "[]"),
        _pick(face, _floats(match_score)),
        ["t" if w else "f" for w in weak.tolist()],
        outcome.tolist(),
        [str(v) for v in faces.tolist()],
        _pick(face, ["0"] * n),
        ["1" if f else "0" for f in face.tolist()],
        _floats(lat),
        [str(v) for v in latency_bin.tolist()],
        ["web" if v < 0.7 else "api" for v in u[10].tolist()],
        ["f"] * n,
        _pick(fed, feedback.tolist()),
        _pick(named, said),
        _pick(fed, _timestamps(t + 30)),
    ]
    return "".join(f"{line}\n" for line in map("\t".join, zip(*columns, strict=True)))


def _migration(filename: str) -> Any:
    """One of the app's Alembic migration modules (their file names start with a digit)."""
    path = Path(lookalike.db.__file__).parent / "migrations" / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"lookalike_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_pg_log(
    url: str, rows: int, days: int, rollups: str, top: int
) -> tuple[dict[str, float], datetime]:
    """The prediction log on PostgreSQL with COPY (seconds of each step, its last day)."""
    import psycopg
    from sqlalchemy.engine import make_url

    timings: dict[str, float] = {}
    began = time.perf_counter()
    init_db(url)
    timings["migrate"] = time.perf_counter() - began
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    probabilities = json.dumps(
        [{"label": f"class-{j:02d}", "probability": round(0.9 / 1.2**j, 4)} for j in range(top)]
    )
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    began = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        if rollups == "rebuild":
            conn.execute("ALTER TABLE predictions DISABLE TRIGGER predictions_rollup")
            conn.commit()
        for first in range(0, rows, BATCH):
            last = min(rows, first + BATCH)
            data = copy_rows(
                first, last, int(start.timestamp()), days * 86400.0, rows, probabilities
            )
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY predictions ({COPY_COLUMNS}) FROM STDIN") as copy,
            ):
                copy.write(data)
            conn.commit()
            if last % 1_000_000 == 0 or last == rows:
                print(f"  {last:>11,} rows, {time.perf_counter() - began:.0f} s", flush=True)
        timings["copy"] = time.perf_counter() - began
        if rollups == "rebuild":
            began = time.perf_counter()
            for statement in _migration("0003_analytics.py")._backfill("postgresql"):
                conn.execute(statement)
            conn.execute("ALTER TABLE predictions ENABLE TRIGGER predictions_rollup")
            conn.commit()
            timings["rollups"] = time.perf_counter() - began
            print(f"  rollups rebuilt in {timings['rollups']:.0f} s", flush=True)
    began = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in ("predictions", "prediction_hours", "prediction_hour_labels"):
            conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("VACUUM ANALYZE prediction_day_labels")
    timings["vacuum"] = time.perf_counter() - began
    add_registry(url, start, end)
    return timings, end


def pg_logged(url: str) -> int:
    """Rows already in the database's prediction log (0: none, or no schema yet)."""
    from sqlalchemy import inspect, text

    engine = make_engine(url)
    with engine.connect() as conn:
        found = inspect(conn).has_table("predictions")
        rows = conn.execute(text("SELECT count(*) FROM predictions")).scalar() if found else 0
    engine.dispose()
    return int(rows or 0)


def pg_size(url: str) -> float:
    """The database's size in MiB."""
    engine = make_engine(url)
    with engine.connect() as conn:
        from sqlalchemy import text

        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
    engine.dispose()
    return float(size or 0) / 2**20


def add_registry(url: str, start: datetime, end: datetime) -> None:
    """Model versions with accuracy and a held-out reference, promoted one after the other."""
    engine = make_engine(url)
    step = (end - start) / VERSIONS
    levels = [i / 10 for i in range(11)]
    with session_factory(engine)() as session, session.begin():
        previous = None
        for k in range(VERSIONS):
            version = f"m{k + 1:04d}"
            at = start + k * step
            reference = {
                "quantiles": levels,
                "probability": [round(0.35 + 0.65 * q, 4) for q in levels],
                "match_score": [round(0.45 + 0.5 * q, 4) for q in levels],
                "mean_match_score": 0.7,
            }
            session.add(
                ModelVersion(
                    version=version,
                    kind="lookalike",
                    created_at=at - timedelta(hours=1),
                    created_by="bench",
                    artifact=f"models/{version}",
                    digest="0" * 64,
                    labels=[f"class-{j:02d}" for j in range(CLASSES)],
                    metrics={
                        "accuracy": 0.9 + 0.02 * k,
                        "macro_f1": 0.88 + 0.02 * k,
                        "reference": reference,
                    },
                    decision="promoted",
                )
            )
            session.flush()
            session.add(
                ModelEvent(
                    at=at,
                    kind="promote",
                    model_kind="lookalike",
                    version=version,
                    previous=previous,
                    promoted=True,
                    reason="bench",
                    actor="bench",
                )
            )
            previous = version
        session.add(ModelAlias(kind="lookalike", alias="champion", version=previous))
    engine.dispose()


# --- timing --------------------------------------------------------------------------------


def time_endpoints(
    client: Any, token: str, windows: dict[str, dict[str, str]], repeat: int
) -> list[tuple[str, str, float, int, float]]:
    headers = {"Authorization": f"Bearer {token}"}
    results = []
    for window, dates in windows.items():
        for name, path, params in ENDPOINTS:
            if params.get("bucket") == "hour" and dates:
                continue  # hourly buckets cover at most 31 days (422 beyond)
            query = {**dates, **params}
            began = time.perf_counter()
            first = client.get(path, params=query, headers=headers)
            first_ms = (time.perf_counter() - began) * 1000
            if first.status_code != 200:
                raise SystemExit(f"{path} {query}: {first.status_code} {first.text[:300]}")
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                r = client.get(path, params=query, headers=headers)
                times.append((time.perf_counter() - began) * 1000)
                assert r.status_code == 200
            results.append((name, window, statistics.median(times), len(first.content), first_ms))
            print(
                f"  {name:32s} {window:12s} {results[-1][2]:8.1f} ms (first {first_ms:.1f} ms)",
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--timezone", default="Europe/Paris")
    parser.add_argument("--keep", type=Path, help="build the log in this directory and keep it")
    parser.add_argument(
        "--rollups",
        choices=["rebuild", "trigger"],
        default="rebuild",
        help="PostgreSQL: fill the rollups after the load, or through the trigger row by row",
    )
    parser.add_argument(
        "--probabilities",
        type=int,
        default=CLASSES,
        help="PostgreSQL: classes kept in each row's probability list (default: all)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL: use this (superuser) database instead of a throwaway cluster; the log"
        " is loaded when its predictions table is missing or empty, reused otherwise",
    )
    args = parser.parse_args(argv)
    if args.backend == "postgresql" and args.keep:
        parser.error("--keep is for SQLite only (PostgreSQL: --database-url)")
    if args.database_url and args.backend != "postgresql":
        parser.error("--database-url needs --backend postgresql")

    print(f"machine : {cpu_model()}, {os.cpu_count()} CPUs, load average {load()}")
    print(
        f"versions: python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
        f" sqlalchemy {pkg('sqlalchemy')}, fastapi {pkg('fastapi')}, starlette {pkg('starlette')}"
    )
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-analytics-") as tmp:
        home = args.keep or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        if args.database_url:
            return run(args, home, args.database_url)
        if args.backend == "postgresql":
            from support.pg import PostgresCluster

            with PostgresCluster() as url:
                return run(args, home, url)
        return run(args, home, None)


def run(args: argparse.Namespace, home: Path, pg_url: str | None) -> int:
    """Build (or reuse) the log, time the endpoints, print the table."""
    timings: dict[str, float] = {}
    if pg_url is not None:
        from sqlalchemy import text

        engine = make_engine(pg_url)
        with engine.connect() as conn:
            server = conn.execute(text("SHOW server_version")).scalar()
        engine.dispose()
        backend = f"PostgreSQL {str(server).split()[0]}"
        logged = pg_logged(pg_url)
        if logged:
            print(f"log     : reusing {logged:,} predictions ({backend})")
            end = datetime.now(UTC)
        else:
            print(f"log     : loading {args.rows:,} predictions over {args.days} days ({backend})")
            timings, end = build_pg_log(
                pg_url, args.rows, args.days, args.rollups, args.probabilities
            )
            steps = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            print(f"          loaded in {sum(timings.values()):.0f} s ({steps})")
        print(f"          {pg_size(pg_url):,.0f} MiB on disk (log, indexes, rollups)")
    else:
        backend = "SQLite"
        path = home / "lookalike.sqlite3"
        if path.exists():
            print(f"log     : reusing {path}")
            end = datetime.now(UTC)
        else:
            print(f"log     : building {args.rows:,} predictions over {args.days} days")
            seconds, end = build_log(path, args.rows, args.days)
            timings = {"build": seconds}
            print(f"          built in {seconds:.0f} s")
        size = sum(p.stat().st_size for p in home.glob("lookalike.sqlite3*")) / 2**20
        print(f"          {size:,.0f} MiB on disk (log, indexes, rollups)")
    settings = Settings(
        home=home,
        timezone=args.timezone,
        secret_key="bench-secret-" + "x" * 32,
        database_url=pg_url or "",
    )
    engine = make_engine(settings.effective_database_url)
    with session_factory(engine)() as session:
        _, token = accounts.create_token(session, "bench")
        from sqlalchemy import text

        hours = session.execute(text("SELECT count(*) FROM prediction_hours")).scalar()
        labels = session.execute(text("SELECT count(*) FROM prediction_hour_labels")).scalar()
    engine.dispose()
    print(
        f"          rollups: {hours:,} rows per hour x version x outcome, {labels:,} with the class"
    )
    today = end.astimezone(settings_zone(args.timezone)).date()
    windows = {
        "last 30 days": {},
        "all time": {
            "start": (today - timedelta(days=args.days + 2)).isoformat(),
            "end": (today + timedelta(days=1)).isoformat(),
        },
    }
    logging.getLogger("lookalike.api").setLevel(logging.ERROR)  # no model files: fine here
    with TestClient(create_app(settings)) as client:
        results = time_endpoints(client, token, windows, args.repeat)
    loaded = f"; loaded in {sum(timings.values()):.0f} s" if timings else ""
    print(
        f"\n### Dashboard endpoints ({args.rows:,} predictions, {backend}, {args.timezone};"
        f" median of {args.repeat} warm requests{loaded})\n"
    )
    print("| endpoint | range | median ms | answer KiB | target | first request ms |")
    print("|---|---|---|---|---|---|")
    for name, window, ms, size_bytes, first_ms in results:
        verdict = "met" if ms < TARGET_MS else "missed"
        print(
            f"| {name} | {window} | {ms:.1f} | {size_bytes / 1024:.1f}"
            f" | {TARGET_MS:.0f}: {verdict} | {first_ms:.1f} |"
        )
    print(f"\nload average at the end: {load()}")
    return 0 if all(ms < TARGET_MS for _, _, ms, _, _ in results) else 1


def settings_zone(name: str) -> Any:
    from lookalike.zones import zone

    return zone(name)


if __name__ == "__main__":
    sys.exit(main())
