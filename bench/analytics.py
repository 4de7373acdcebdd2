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
then the median of ``--repeat`` (5). Target: every answer under 300 ms. Hourly volume is
asked for the 30 days only: hourly buckets cover at most 31 days (a 422 beyond).

``--keep DIR`` builds (or reuses) the log in DIR. The load average is printed: on a busy
machine the numbers are high, not wrong.
"""

from __future__ import annotations

import argparse
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

from machine import cpu_model, load, pkg

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
) -> list[tuple[str, str, float, int]]:
    headers = {"Authorization": f"Bearer {token}"}
    results = []
    for window, dates in windows.items():
        for name, path, params in ENDPOINTS:
            if params.get("bucket") == "hour" and dates:
                continue  # hourly buckets cover at most 31 days (422 beyond)
            query = {**dates, **params}
            first = client.get(path, params=query, headers=headers)
            if first.status_code != 200:
                raise SystemExit(f"{path} {query}: {first.status_code} {first.text[:300]}")
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                r = client.get(path, params=query, headers=headers)
                times.append((time.perf_counter() - began) * 1000)
                assert r.status_code == 200
            results.append((name, window, statistics.median(times), len(first.content)))
            print(f"  {name:32s} {window:12s} {results[-1][2]:8.1f} ms", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--timezone", default="Europe/Paris")
    parser.add_argument("--keep", type=Path, help="build the log in this directory and keep it")
    args = parser.parse_args(argv)

    print(f"machine : {cpu_model()}, {os.cpu_count()} CPUs, load average {load()}")
    print(
        f"versions: python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
        f" sqlalchemy {pkg('sqlalchemy')}, fastapi {pkg('fastapi')}, starlette {pkg('starlette')}"
    )
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-analytics-") as tmp:
        home = args.keep or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        path = home / "lookalike.sqlite3"
        if path.exists():
            print(f"log     : reusing {path}")
            end = datetime.now(UTC)
        else:
            print(f"log     : building {args.rows:,} predictions over {args.days} days")
            seconds, end = build_log(path, args.rows, args.days)
            print(f"          built in {seconds:.0f} s")
        size = sum(p.stat().st_size for p in home.glob("lookalike.sqlite3*")) / 2**20
        print(f"          {size:,.0f} MiB on disk (log, indexes, rollups)")
        settings = Settings(
            home=home, timezone=args.timezone, secret_key="bench-secret-" + "x" * 32
        )
        engine = make_engine(settings.effective_database_url)
        with session_factory(engine)() as session:
            _, token = accounts.create_token(session, "bench")
            from sqlalchemy import text

            hours = session.execute(text("SELECT count(*) FROM prediction_hours")).scalar()
            labels = session.execute(text("SELECT count(*) FROM prediction_hour_labels")).scalar()
        engine.dispose()
        print(
            f"          rollups: {hours:,} rows per hour x version x outcome,"
            f" {labels:,} with the class"
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
    print(
        f"\n### Dashboard endpoints ({args.rows:,} predictions, SQLite, {args.timezone};"
        f" median of {args.repeat} warm requests)\n"
    )
    print("| endpoint | range | median ms | answer KiB | target |")
    print("|---|---|---|---|---|")
    for name, window, ms, size_bytes in results:
        verdict = "met" if ms < TARGET_MS else "missed"
        print(
            f"| {name} | {window} | {ms:.1f} | {size_bytes / 1024:.1f}"
            f" | {TARGET_MS:.0f}: {verdict} |"
        )
    print(f"\nload average at the end: {load()}")
    return 0 if all(ms < TARGET_MS for _, _, ms, _ in results) else 1


def settings_zone(name: str) -> Any:
    from lookalike.zones import zone

    return zone(name)


if __name__ == "__main__":
    sys.exit(main())
