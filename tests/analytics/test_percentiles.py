"""Latency percentiles are exact (nearest rank) on a larger random log, and zones with
half-hour offsets are bucketed from the log itself; SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.analytics import (
    Req,
    dashboard,
    seed,
    utc,
)

from lookalike.analytics.filters import NO_MATCH
from lookalike.db.models import LATENCY_EDGES_MS
from lookalike.zones import zone

# --- percentiles on a larger random log ------------------------------------------------------


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def test_percentiles_are_exact_nearest_rank_on_a_random_log(
    tmp_path: Path, database_url: str
) -> None:
    """600 answers over three local days, three classes, ties and every latency bin: the
    database's answers equal nearest rank worked out in Python."""
    rng = random.Random(7)
    edges = [0.5, *LATENCY_EDGES_MS, 9000]
    requests = []
    for i in range(600):
        at = datetime(2026, 10, 24, 20, tzinfo=UTC) + timedelta(minutes=i * 7.5)
        latency = rng.choice(edges) if i % 10 == 0 else round(rng.uniform(1, 400), 2)
        label = rng.choice(["a", "b", "c", None])
        requests.append(
            Req(
                at.replace(tzinfo=None).isoformat(),
                label,
                latency,
                0.5,
                0.5,
                outcome="match" if label else "no_strong_match",
                best=label or "a",
                version=rng.choice(["m1", "m2"]),
            )
        )
    seed(database_url, requests, registry=False)
    paris = zone("Europe/Paris")
    days: dict[str, list[Req]] = {}
    for r in requests:
        days.setdefault(utc(r.at).astimezone(paris).date().isoformat(), []).append(r)

    def entry(rs: list[Req]) -> dict[str, Any]:
        values = [r.latency for r in rs]
        return {
            "count": len(values),
            "p50": nearest_rank(values, 0.5),
            "p95": nearest_rank(values, 0.95),
        }

    window = {"start": "2026-10-24", "end": "2026-10-28"}
    with dashboard(tmp_path / "home", database_url) as d:
        for version in (None, "m2"):
            for label in (None, "b", NO_MATCH):

                def keep(r: Req, version: str | None = version, label: str | None = label) -> bool:
                    if version and r.version != version:
                        return False
                    if label == NO_MATCH:
                        return r.label is None
                    return label is None or r.label == label

                kept = [r for r in requests if keep(r)]
                by_day = d.json("latency", **window, model_version=version, label=label)
                assert by_day["overall"] == entry(kept)
                assert by_day["data"] == [
                    {"day": day, **entry([r for r in rs if keep(r)])}
                    for day, rs in sorted(days.items())
                    if any(keep(r) for r in rs)
                ]
                by_class = d.json(
                    "latency", **window, by="class", model_version=version, label=label
                )
                assert by_class["overall"] == entry(kept)
                expected: dict[str | None, list[Req]] = {}
                for r in kept:
                    expected.setdefault(r.label, []).append(r)
                assert sorted(by_class["data"], key=lambda e: str(e["label"])) == sorted(
                    ({"label": k, **entry(v)} for k, v in expected.items()),
                    key=lambda e: str(e["label"]),
                )


def test_zones_with_half_hour_offsets_read_the_log(tmp_path: Path, database_url: str) -> None:
    """India (UTC+05:30): local days start at 18:30 UTC; the hourly rollups cannot split
    them, so the buckets come from the log itself."""
    seed(
        database_url,
        [
            Req("2026-03-01T18:29:00", "a", 10.0, 0.9, 0.9),  # 23:59 on 1 March
            Req("2026-03-01T18:30:00", "a", 20.0, 0.9, 0.9),  # 00:00 on 2 March
            Req("2026-03-01T19:10:00", "b", 30.0, 0.9, 0.9),  # 00:40
        ],
        registry=False,
    )
    with dashboard(tmp_path / "home", database_url, timezone="Asia/Kolkata") as d:
        day = d.json("volume", start="2026-03-01", end="2026-03-03")
        assert [(r["start"], r["label"], r["count"]) for r in day["data"]] == [
            ("2026-03-01T00:00:00+05:30", "a", 1),
            ("2026-03-02T00:00:00+05:30", "a", 1),
            ("2026-03-02T00:00:00+05:30", "b", 1),
        ]
        hour = d.json("volume", start="2026-03-01", end="2026-03-03", bucket="hour")
        assert [r["start"] for r in hour["data"]] == [
            "2026-03-01T23:00:00+05:30",
            "2026-03-02T00:00:00+05:30",
            "2026-03-02T00:00:00+05:30",
        ]
        lat = d.json("latency", start="2026-03-01", end="2026-03-03")
        assert [(r["day"], r["count"], r["p95"]) for r in lat["data"]] == [
            ("2026-03-01", 1, 10.0),
            ("2026-03-02", 2, 30.0),
        ]
        heat = d.json("heatmap", start="2026-03-01", end="2026-03-03")
        assert heat["data"][6][23] == 1 and heat["data"][0][0] == 2  # Sunday 23h, Monday 0h


def test_kept_answers_of_past_days_follow_deleted_rows(tmp_path: Path, database_url: str) -> None:
    """A past day's percentiles are looked up once and kept; deleting rows of that day
    changes its histogram, so the next answer is looked up again and still exact."""
    from sqlalchemy import delete

    from lookalike.db import make_engine, session_factory
    from lookalike.db.models import PredictionRecord

    requests = [
        Req(f"2026-05-0{1 + i % 2}T{8 + i % 10:02d}:{i % 60:02d}:00", "a", 40 + i / 25, 0.9, 0.9)
        for i in range(40)  # one latency bin, [40, 42): a deletion moves only the ranks in it
    ]
    seed(database_url, requests, registry=False)
    paris = zone("Europe/Paris")

    def expected(rs: list[Req]) -> list[dict[str, Any]]:
        days: dict[str, list[float]] = {}
        for r in rs:
            days.setdefault(utc(r.at).astimezone(paris).date().isoformat(), []).append(r.latency)
        return [
            {"day": day, "count": len(v), "p50": nearest_rank(v, 0.5), "p95": nearest_rank(v, 0.95)}
            for day, v in sorted(days.items())
        ]

    window = {"start": "2026-05-01", "end": "2026-05-03"}
    with dashboard(tmp_path / "home", database_url) as d:
        assert d.json("latency", **window)["data"] == expected(requests)
        assert d.json("latency", **window)["data"] == expected(requests)  # kept answers
        gone = [r for r in requests if r.at.startswith("2026-05-01")][-6:]  # the slowest
        engine = make_engine(database_url)
        with session_factory(engine)() as session, session.begin():
            for r in gone:
                session.execute(
                    delete(PredictionRecord).where(PredictionRecord.created_at == utc(r.at))
                )
        engine.dispose()
        left = [r for r in requests if r not in gone]
        assert d.json("latency", **window)["data"] == expected(left)
        assert d.json("latency", **window, label="a")["data"] == expected(left)
