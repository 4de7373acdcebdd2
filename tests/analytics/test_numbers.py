"""The dashboard's analytics endpoints on SQLite and PostgreSQL: exact numbers on a log seeded
with known values (tests/test_analytics_support.py: a month boundary and both DST changes of
Europe/Paris), filters, admin-only access, exports, the rollups' triggers and migration, and
requests without a face being logged."""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from sqlalchemy import select, text
from test_analytics_support import (
    LOG,
    UNIFORM,
    Dashboard,
    Req,
    dashboard,
    database,
    seed,
    utc,
)
from test_api_support import Orl, api_settings, assert_error, client_for, linked_home, trained_home

from lookalike.analytics.facts import HOURS_COLUMNS, L_BINS, LABELS_COLUMNS, log_columns, log_ts
from lookalike.analytics.filters import EARLIEST, LATEST, NO_MATCH, parse_filters
from lookalike.analytics.timebuckets import Clock, offset_intervals
from lookalike.analytics.zones import zone
from lookalike.db import Prediction, init_db, make_engine, session_factory
from lookalike.db.migrate import alembic_config, upgrade
from lookalike.db.models import LATENCY_EDGES_MS, latency_bin

RANGE = {"start": "2026-02-01", "end": "2026-11-01"}
ENDPOINTS = [
    "classes",
    "accuracy",
    "volume",
    "heatmap",
    "latency",
    "confidence",
    "feedback",
    "drift",
    "export.csv",
    "export.json",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def board(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """The seeded log behind a running app (read-only tests share it), per database."""
    folder = tmp_path_factory.mktemp(f"analytics_{request.param}")
    pg = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with database(request.param, folder, pg) as url:
        seed(url, LOG)
        with dashboard(folder / "home", url, drift_threshold=0.7) as d:
            yield d


# --- exact numbers ---------------------------------------------------------------------------


def test_classes_overall_and_per_model(board: Dashboard) -> None:
    body = board.json("classes", **RANGE)
    assert body["filters"] == {
        "start": "2026-02-01T00:00:00+01:00",
        "end": "2026-11-01T00:00:00+01:00",
        "model_version": None,
        "label": None,
    }
    assert body["timezone"] == "Europe/Paris"
    assert body["total"] == 11  # the request without a face is not a prediction
    assert body["data"] == [
        {"label": "a", "count": 6, "share": 0.545455},
        {"label": "b", "count": 3, "share": 0.272727},
        {"label": None, "count": 2, "share": 0.181818},
    ]
    assert body["by_model"] == [
        {"model_version": "m1", "label": "a", "count": 2},
        {"model_version": "m1", "label": "b", "count": 1},
        {"model_version": "m1", "label": None, "count": 1},
        {"model_version": "m2", "label": "a", "count": 4},
        {"model_version": "m2", "label": "b", "count": 2},
        {"model_version": "m2", "label": None, "count": 1},
    ]
    only = board.json("classes", **RANGE, model_version="m1", label=NO_MATCH)
    assert only["filters"]["label"] == NO_MATCH
    assert only["data"] == [{"label": None, "count": 1, "share": 1.0}]
    # March in Paris starts on 2026-02-28 23:00 UTC: row 2 is in, row 1 is not.
    march = board.json("classes", start="2026-03-01", end="2026-04-01")
    assert march["total"] == 7 and march["data"][0] == {"label": "a", "count": 4, "share": 0.571429}


def test_volume_per_day_week_month_across_a_month_boundary_and_dst(board: Dashboard) -> None:
    day = board.json("volume", **RANGE)
    assert day["bucket"] == "day"
    assert [(r["start"], r["label"], r["count"]) for r in day["data"]] == [
        ("2026-02-28T00:00:00+01:00", "a", 1),
        ("2026-03-01T00:00:00+01:00", "a", 1),
        ("2026-03-01T00:00:00+01:00", "b", 1),
        ("2026-03-01T00:00:00+01:00", None, 1),
        ("2026-03-29T00:00:00+01:00", "a", 2),  # a 23-hour day
        ("2026-03-29T00:00:00+01:00", "b", 1),
        ("2026-03-30T00:00:00+02:00", "a", 1),
        ("2026-10-25T00:00:00+02:00", "a", 1),  # a 25-hour day
        ("2026-10-25T00:00:00+02:00", "b", 1),
        ("2026-10-25T00:00:00+02:00", None, 1),
    ]
    week = board.json("volume", **RANGE, bucket="week")
    assert [(r["start"], r["label"], r["count"]) for r in week["data"]] == [
        ("2026-02-23T00:00:00+01:00", "a", 2),  # Monday 23 Feb - Sunday 1 March
        ("2026-02-23T00:00:00+01:00", "b", 1),
        ("2026-02-23T00:00:00+01:00", None, 1),
        ("2026-03-23T00:00:00+01:00", "a", 2),
        ("2026-03-23T00:00:00+01:00", "b", 1),
        ("2026-03-30T00:00:00+02:00", "a", 1),
        ("2026-10-19T00:00:00+02:00", "a", 1),
        ("2026-10-19T00:00:00+02:00", "b", 1),
        ("2026-10-19T00:00:00+02:00", None, 1),
    ]
    month = board.json("volume", **RANGE, bucket="month")
    assert [(r["start"], r["label"], r["count"]) for r in month["data"]] == [
        ("2026-02-01T00:00:00+01:00", "a", 1),
        ("2026-03-01T00:00:00+01:00", "a", 4),
        ("2026-03-01T00:00:00+01:00", "b", 2),
        ("2026-03-01T00:00:00+01:00", None, 1),
        ("2026-10-01T00:00:00+02:00", "a", 1),
        ("2026-10-01T00:00:00+02:00", "b", 1),
        ("2026-10-01T00:00:00+02:00", None, 1),
    ]
    b_only = board.json("volume", **RANGE, bucket="month", label="b")
    assert [(r["start"], r["count"]) for r in b_only["data"]] == [
        ("2026-03-01T00:00:00+01:00", 2),
        ("2026-10-01T00:00:00+02:00", 1),
    ]


def test_volume_per_hour_through_both_dst_changes(board: Dashboard) -> None:
    spring = board.json("volume", start="2026-03-28", end="2026-03-31", bucket="hour")
    assert [(r["start"], r["label"], r["count"]) for r in spring["data"]] == [
        ("2026-03-29T01:00:00+01:00", "a", 1),
        ("2026-03-29T03:00:00+02:00", "b", 1),  # 02:00 never happened
        ("2026-03-29T23:00:00+02:00", "a", 1),
        ("2026-03-30T00:00:00+02:00", "a", 1),
    ]
    autumn = board.json("volume", start="2026-10-24", end="2026-10-27", bucket="hour")
    assert [(r["start"], r["label"], r["count"]) for r in autumn["data"]] == [
        ("2026-10-25T02:00:00+02:00", "a", 1),  # 02:00 happens twice: two buckets
        ("2026-10-25T02:00:00+01:00", "b", 1),
        ("2026-10-25T23:00:00+01:00", None, 1),
    ]


def test_heatmap_in_local_time(board: Dashboard) -> None:
    body = board.json("heatmap", **RANGE)
    assert body["weekdays"] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert body["hours"] == list(range(24))
    expected = [[0] * 24 for _ in range(7)]
    for weekday, hour, n in [
        (0, 0, 1),
        (5, 23, 1),
        (6, 0, 1),
        (6, 1, 1),
        (6, 2, 2),
        (6, 3, 1),
        (6, 11, 1),
        (6, 12, 1),
        (6, 23, 2),
    ]:
        expected[weekday][hour] = n
    assert body["data"] == expected
    one = board.json("heatmap", **RANGE, label="b")
    assert sum(map(sum, one["data"])) == 3 and one["data"][6][2] == 1


def test_latency_percentiles_per_day_and_per_class(board: Dashboard) -> None:
    by_day = board.json("latency", **RANGE)
    assert by_day["by"] == "day"
    # 11 answers, 10.125 ... 110.125: p50 is the 6th smallest, p95 the 11th (ceil(0.95*11)).
    assert by_day["overall"] == {"count": 11, "p50": 60.125, "p95": 110.125}
    assert by_day["data"] == [
        {"day": "2026-02-28", "count": 1, "p50": 10.125, "p95": 10.125},
        {"day": "2026-03-01", "count": 3, "p50": 30.125, "p95": 40.125},
        {"day": "2026-03-29", "count": 3, "p50": 60.125, "p95": 70.125},
        {"day": "2026-03-30", "count": 1, "p50": 80.125, "p95": 80.125},
        {"day": "2026-10-25", "count": 3, "p50": 100.125, "p95": 110.125},
    ]
    by_class = board.json("latency", **RANGE, by="class")
    assert by_class["overall"] == by_day["overall"]
    assert by_class["data"] == [
        {"label": "a", "count": 6, "p50": 50.125, "p95": 90.125},
        {"label": "b", "count": 3, "p50": 60.125, "p95": 100.125},
        {"label": None, "count": 2, "p50": 40.125, "p95": 110.125},
    ]
    a_days = board.json("latency", **RANGE, label="a")
    assert a_days["overall"] == {"count": 6, "p50": 50.125, "p95": 90.125}
    assert [(r["day"], r["count"], r["p50"]) for r in a_days["data"]] == [
        ("2026-02-28", 1, 10.125),
        ("2026-03-01", 1, 20.125),
        ("2026-03-29", 2, 50.125),
        ("2026-03-30", 1, 80.125),
        ("2026-10-25", 1, 90.125),
    ]
    m2 = board.json("latency", **RANGE, by="class", model_version="m2", label=NO_MATCH)
    assert m2["data"] == [{"label": None, "count": 1, "p50": 110.125, "p95": 110.125}]


def test_confidence_histogram_and_shares(board: Dashboard) -> None:
    body = board.json("confidence", **RANGE)
    assert body["total"] == 12  # every logged request, the one without a face included
    assert [(h["from"], h["to"]) for h in body["histogram"]] == [
        (0.0, 0.1),
        (0.1, 0.2),
        (0.2, 0.3),
        (0.3, 0.4),
        (0.4, 0.5),
        (0.5, 0.6),
        (0.6, 0.7),
        (0.7, 0.8),
        (0.8, 0.9),
        (0.9, 1.0),
    ]
    # 0.1 and 0.9 sit on bin edges: they belong to the bin above.
    assert [h["count"] for h in body["histogram"]] == [0, 1, 1, 1, 1, 1, 1, 1, 1, 3]
    assert body["no_strong_match_share"] == 0.166667
    assert body["no_face_share"] == 0.083333
    assert body["several_faces_share"] == 0.083333
    empty = board.json("confidence", start="2025-01-01", end="2025-02-01")
    assert empty["total"] == 0 and empty["no_face_share"] is None


def test_feedback_and_the_confusion_it_implies(board: Dashboard) -> None:
    body = board.json("feedback", **RANGE)
    assert body["data"] == [
        {"label": "a", "likes": 1, "dislikes": 0},
        {"label": "b", "likes": 0, "dislikes": 1},
        {"label": None, "likes": 0, "dislikes": 1},
    ]
    assert body["confusion"] == [
        {"predicted": "a", "said": "b", "count": 1},
        {"predicted": "b", "said": "a", "count": 1},
    ]
    b = board.json("feedback", **RANGE, label="b")
    assert b["data"] == [{"label": "b", "likes": 0, "dislikes": 1}]
    assert b["confusion"] == [{"predicted": "b", "said": "a", "count": 1}]


def test_accuracy_evolution_with_champions_and_events(board: Dashboard) -> None:
    body = board.json("accuracy", start="2026-01-01", end="2026-12-01")
    assert body["champion"] == "m2"
    assert body["data"] == [
        {
            "version": "m1",
            "created_at": "2026-01-10T10:00:00+01:00",
            "accuracy": 0.9,
            "macro_f1": 0.85,
            "decision": "promoted",
            "champion": False,
            "was_champion": True,
        },
        {
            "version": "m2",
            "created_at": "2026-03-20T10:00:00+01:00",
            "accuracy": 0.95,
            "macro_f1": 0.93,
            "decision": "promoted",
            "champion": True,
            "was_champion": True,
        },
        {
            "version": "m3",
            "created_at": "2026-05-01T11:00:00+02:00",
            "accuracy": 0.8,
            "macro_f1": 0.75,
            "decision": "refused",
            "champion": False,
            "was_champion": False,
        },
    ]
    assert [(e["at"], e["kind"], e["version"], e["previous"]) for e in body["events"]] == [
        ("2026-01-10T10:01:00+01:00", "promote", "m1", None),
        ("2026-03-20T10:01:00+01:00", "promote", "m2", "m1"),
        ("2026-04-01T10:00:00+02:00", "rollback", "m1", "m2"),
        ("2026-04-05T10:00:00+02:00", "promote", "m2", "m1"),
    ]
    assert body["events"][2]["reason"] == "rollback m1" and body["events"][2]["actor"] == "alice"
    spring = board.json("accuracy", start="2026-03-01", end="2026-04-02")
    assert [v["version"] for v in spring["data"]] == ["m2"]
    assert [e["kind"] for e in spring["events"]] == ["promote", "rollback"]


def test_drift_against_the_champions_reference(board: Dashboard) -> None:
    body = board.json("drift", start="2026-03-29", end="2026-03-31")
    assert body["threshold"] == 0.7
    assert body["reference_version"] == "m2" and body["reference"] == UNIFORM
    # Against a uniform reference F_ref(x) = x. 03-29: probabilities 0.65, 0.75, 0.9 and match
    # scores 0.62, 0.72, 0.82: none below 0.6, where F_ref = 0.6. 03-30: probability 0.1 (below
    # 0.2: F_day = 1 where F_ref = 0.2), match score 0.52 (none below 0.5).
    assert body["data"] == [
        {
            "day": "2026-03-29",
            "n": 3,
            "mean_match_score": 0.72,
            "mean_probability": 0.766667,
            "score": 0.6,
            "ks_match_score": 0.6,
            "ks_probability": 0.6,
            "over": False,
        },
        {
            "day": "2026-03-30",
            "n": 1,
            "mean_match_score": 0.52,
            "mean_probability": 0.1,
            "score": 0.8,
            "ks_match_score": 0.5,
            "ks_probability": 0.8,
            "over": True,
        },
    ]
    m1 = board.json("drift", start="2026-02-28", end="2026-03-02", model_version="m1")
    assert m1["reference_version"] == "m1" and m1["reference"] is None  # m1 has no usable one
    assert [(d["day"], d["n"], d["score"], d["over"]) for d in m1["data"]] == [
        ("2026-02-28", 1, None, False),
        ("2026-03-01", 3, None, False),
    ]


def test_partial_hours_at_the_edges_come_from_the_log(board: Dashboard) -> None:
    """Datetime filters cut UTC hours in two: whole hours from the rollups, the rest from
    the log (here 12:00:30 Paris excludes row 4 logged at 12:00:00 in the same hour)."""
    body = board.json("confidence", start="2026-03-01T12:00:30", end="2026-10-25T02:30:00+01:00")
    assert body["total"] == 6  # rows 5-10: row 11 is logged exactly at the end (exclusive)
    assert body["no_face_share"] == 0.166667
    classes = board.json("classes", start="2026-03-01T11:00:00+01:00", end="2026-03-01T12:00:01")
    assert classes["data"] == [
        {"label": "b", "count": 1, "share": 0.5},
        {"label": None, "count": 1, "share": 0.5},
    ]
    lat = board.json("latency", start="2026-03-01T11:30", end="2026-03-01T12:30", by="class")
    assert lat["overall"] == {"count": 1, "p50": 40.125, "p95": 40.125}


# --- filters and access ----------------------------------------------------------------------


def test_every_endpoint_is_admin_only(board: Dashboard) -> None:
    for name in ENDPOINTS:
        assert_error(board.client.get(f"/api/analytics/{name}"), 401, "auth.required")
        r = board.client.get(
            f"/api/analytics/{name}", headers={"Authorization": "Bearer not-a-token"}
        )
        assert_error(r, 401, "auth.invalid_token")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-13-01"}, "query.start"),
        ({"end": "yesterday"}, "query.end"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "query.end"),
        ({"start": "2026-03-01", "end": "2026-03-01"}, "query.end"),
        ({"start": "1999-02-30"}, "query.start"),
        ({"label": "x" * 300}, "query.label"),
        ({"model_version": "a\x01b"}, "query.model_version"),
    ],
)
def test_bad_filters_are_refused_in_the_one_error_shape(
    board: Dashboard, params: dict[str, str], field: str
) -> None:
    details = assert_error(board.get("classes", **params), 422, "request.invalid")
    assert [f["field"] for f in details["fields"]] == [field]


def test_bad_buckets_and_splits_are_refused(board: Dashboard) -> None:
    details = assert_error(board.get("volume", bucket="year"), 422, "request.invalid")
    assert details["fields"][0]["field"] == "query.bucket"
    details = assert_error(board.get("latency", by="model"), 422, "request.invalid")
    assert details["fields"][0]["field"] == "query.by"
    details = assert_error(board.get("volume", **RANGE, bucket="hour"), 422, "request.invalid")
    assert "31 days" in details["fields"][0]["message"]


def test_a_range_beyond_the_calendar_is_clamped_not_refused() -> None:
    paris = zone("Europe/Paris")
    far = parse_filters(paris, start="0001-01-01", end="9999-12-31T23:59:59+00:00")
    assert far.start == EARLIEST and far.end == LATEST  # "from the start", "to the end"
    early = parse_filters(paris, start="1900-01-01", end="2026-03-01")
    assert early.start == EARLIEST and early.end.isoformat() == "2026-03-01T00:00:00+01:00"


def test_default_range_is_the_last_30_local_days() -> None:
    paris = zone("Europe/Paris")
    now = datetime(2026, 3, 30, 21, 30, tzinfo=UTC)  # 23:30 in Paris
    f = parse_filters(paris, now=now)
    assert f.start.isoformat() == "2026-03-01T00:00:00+01:00"
    assert f.end.isoformat() == "2026-03-31T00:00:00+02:00"
    only_end = parse_filters(paris, end="2026-04-01", now=now)
    assert only_end.start.isoformat() == "2026-03-02T00:00:00+01:00"
    instant = parse_filters(paris, start="2026-03-29T02:30", end="2026-03-29T02:00:00Z", now=now)
    # 02:30 did not exist that night: read with the offset before the change (+01:00).
    assert instant.start.isoformat() == "2026-03-29T03:30:00+02:00"
    assert instant.end_utc == datetime(2026, 3, 29, 2, tzinfo=UTC)


def test_time_zone_offsets_come_from_zoneinfo_to_the_second() -> None:
    paris = zone("Europe/Paris")
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    intervals = offset_intervals(paris, start, end)
    spring = int(datetime(2026, 3, 29, 1, tzinfo=UTC).timestamp())
    autumn = int(datetime(2026, 10, 25, 1, tzinfo=UTC).timestamp())
    assert [(i.start, i.end, i.offset) for i in intervals] == [
        (start, spring, 3600),
        (spring, autumn, 7200),
        (autumn, end, 3600),
    ]
    clock = Clock(
        "sqlite", paris, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    )
    assert clock.hour_aligned
    day = int(datetime(2026, 10, 25).replace(tzinfo=UTC).timestamp())  # local wall seconds
    [(lo, hi)] = clock.day_spans(day)
    assert hi - lo == 25 * 3600
    march = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    india = Clock("sqlite", zone("Asia/Kolkata"), *march)
    assert not india.hour_aligned
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus_Mons")


# --- exports ---------------------------------------------------------------------------------


def test_exports_csv_and_json(board: Dashboard) -> None:
    r = board.get("export.csv", start="2026-10-25", end="2026-10-26")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == (
        'attachment; filename="predictions_2026-10-25_2026-10-26.csv"'
    )
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == [
        "id",
        "created_at",
        "model_version",
        "label",
        "best_label",
        "probability",
        "match_score",
        "no_strong_match",
        "faces_found",
        "frames_used",
        "latency_ms",
        "client",
        "feedback",
        "feedback_label",
    ]
    assert [row[1:] for row in rows[1:]] == [
        [
            "2026-10-25T00:30:00+00:00",
            "m2",
            "a",
            "a",
            "0.45",
            "0.5",
            "false",
            "1",
            "1",
            "90.125",
            "web",
            "like",
            "",
        ],
        [
            "2026-10-25T01:30:00+00:00",
            "m2",
            "b",
            "b",
            "0.999",
            "0.4",
            "false",
            "1",
            "1",
            "100.125",
            "web",
            "dislike",
            "a",
        ],
        [
            "2026-10-25T22:30:00+00:00",
            "m2",
            "",
            "a",
            "0.25",
            "0.2",
            "true",
            "1",
            "1",
            "110.125",
            "web",
            "dislike",
            "b",
        ],
    ]
    assert all(len(row[0]) == 32 for row in rows[1:])
    body = board.get("export.json", start="2026-03-01", end="2026-03-02", model_version="m1")
    assert body.headers["content-disposition"].endswith('_2026-03-01_2026-03-02_m1.json"')
    data = body.json()
    assert data["filters"]["model_version"] == "m1" and data["timezone"] == "Europe/Paris"
    assert data["count"] == 4 and len(data["data"]) == 4  # the request without a face too
    no_face = data["data"][-1]
    assert no_face["faces_found"] == 0 and no_face["best_label"] is None
    assert no_face["probability"] is None and no_face["latency_ms"] == 5.5
    assert "storage_key" not in no_face and "deletion_token_hash" not in no_face
    assert data["data"][0]["created_at"] == "2026-02-28T23:30:00+00:00"
    none = board.get("export.csv", start="2026-03-01", end="2026-03-02", label=NO_MATCH)
    assert len(list(csv.reader(io.StringIO(none.text)))) == 2


def test_export_row_limit(tmp_path: Path, database_url: str) -> None:
    seed(database_url, LOG[:5], registry=False)
    with dashboard(tmp_path / "home", database_url, export_max_rows=4) as d:
        details = assert_error(d.get("export.csv", **RANGE), 422, "analytics.export_too_large")
        assert details == {"rows": 5, "max_rows": 4}
        assert_error(d.get("export.json", **RANGE), 422, "analytics.export_too_large")
        assert d.get("export.json", **RANGE, label="a").json()["count"] == 2


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


# --- the rollups and the migration -----------------------------------------------------------


def _rebuilt(conn: Any) -> dict[str, tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]]:
    """Every rollup recomputed from the log (the analytics' own bin definitions)."""
    columns = log_columns()
    dialect = conn.dialect.name
    ts = log_ts(dialect)
    out = {}
    for table, key, unit, names in (
        ("prediction_hours", "", 3600, HOURS_COLUMNS),
        ("prediction_hour_labels", ", COALESCE(label, '')", 3600, LABELS_COLUMNS),
        ("prediction_day_labels", ", COALESCE(label, '')", 86400, [*LABELS_COLUMNS, *L_BINS]),
    ):
        sums = ", ".join(f"SUM({columns[c]})" for c in names)
        rows = conn.execute(
            text(
                f"SELECT ({ts}) / {unit}, model_version, outcome{key}, {sums} FROM predictions"
                f" GROUP BY 1, 2, 3{', 4' if key else ''}"
            )
        ).all()
        stored = conn.execute(text(f"SELECT * FROM {table}")).all()
        out[table] = ({_round(r) for r in rows}, {_round(r) for r in stored})
    return out


def _round(row: Any) -> tuple[Any, ...]:
    return tuple(
        round(v, 9)
        if isinstance(v, float)
        else int(v)
        if hasattr(v, "__int__") and not isinstance(v, str)
        else v
        for v in row
    )


def assert_rollups_match(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            for table, (expected, stored) in _rebuilt(conn).items():
                assert stored == expected, table
    finally:
        engine.dispose()


def test_triggers_keep_the_rollups_in_step_with_the_log(database_url: str) -> None:
    seed(database_url, LOG, registry=False)
    assert_rollups_match(database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        with sessions() as session, session.begin():
            rows = {r.created_at: r for r in session.scalars(select(Prediction))}
            rows[utc(LOG[0].at)].feedback = "like"  # feedback given later
            rows[utc(LOG[9].at)].feedback = None  # and withdrawn
            rows[utc(LOG[2].at)].created_at = utc("2026-06-01T12:00:00")  # moved
            rows[utc(LOG[3].at)].storage_key = "consented/x.jpg"  # not summarised
            session.delete(rows[utc(LOG[6].at)])
            session.delete(rows[utc(LOG[4].at)])
        assert_rollups_match(database_url)
        with sessions() as session, session.begin():
            for row in session.scalars(select(Prediction)):
                session.delete(row)
        with engine.connect() as conn:
            for table in ("prediction_hours", "prediction_hour_labels", "prediction_day_labels"):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    finally:
        engine.dispose()


def test_migration_0003_backfills_old_rows_and_downgrades(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0002")
        latencies = [0.5, 2.0, 9.999, 10.0, 4999.9, 5000.0, 7000.0, 45.5]
        with engine.begin() as conn:
            for i, latency in enumerate(latencies):
                conn.execute(
                    text(
                        "INSERT INTO predictions (id, created_at, model_version, label,"
                        " best_label, probability, probabilities, match_score, no_strong_match,"
                        " faces_found, frames_used, latency_ms, client, consent, feedback)"
                        " VALUES (:id, :at, 'm0001', :label, 'a', 0.5, '[]', 0.5, :nsm, 1, 1,"
                        " :latency, 'web', :consent, :feedback)"
                    ),
                    {
                        "id": f"{i:032x}",
                        "at": datetime(2026, 3, 29, i, 15, tzinfo=UTC)
                        if database_url.startswith("postgresql")
                        else f"2026-03-29 {i:02d}:15:00.000000",
                        "label": None if i % 3 == 0 else "a",
                        "nsm": i % 3 == 0,
                        "latency": latency,
                        "consent": False,
                        "feedback": "like" if i == 1 else None,
                    },
                )
        init_db(database_url)  # -> head
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT latency_ms, latency_bin, outcome, label FROM predictions ORDER BY id")
            ).all()
        assert [row[1] for row in got] == [latency_bin(v) for v in latencies]
        assert [row[2] for row in got] == [
            "no_strong_match" if i % 3 == 0 else "match" for i in range(len(latencies))
        ]
        assert_rollups_match(database_url)
        with engine.begin() as conn:
            command.downgrade(alembic_config(engine.url, conn), "0002")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM predictions")).scalar() == 8
        init_db(database_url)
        assert_rollups_match(database_url)
    finally:
        engine.dispose()


# --- requests without a face are logged ------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Path:
    return trained_home(tmp_path_factory, orl)


def test_a_photo_without_a_face_is_logged_and_counted(
    trained: Path,
    tmp_path: Path,
    database_url: str,
    orl: Orl,
    nonfaces: dict[str, np.ndarray],
) -> None:
    from test_api_support import encode

    settings = api_settings(linked_home(trained, tmp_path / "home"), database_url)
    token = None
    with client_for(settings) as client:
        coffee = [("photo", ("coffee.jpg", encode(nonfaces["coffee"]), "image/jpeg"))]
        assert_error(client.post("/api/predictions", files=coffee), 422, "face.not_found")
        face = [("photo", ("me.pgm", orl["s2"][9].read_bytes(), "image/x-portable-graymap"))]
        assert client.post("/api/predictions", files=face).status_code == 201
        with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            rows = list(session.scalars(select(Prediction).order_by(Prediction.created_at)))
            from lookalike import accounts

            token = accounts.create_token(session, "t")[1]
        assert [r.outcome for r in rows] == ["no_face", "match"]
        no_face = rows[0]
        assert no_face.faces_found == 0 and no_face.best_label is None and no_face.label is None
        assert no_face.probability is None and no_face.match_score is None
        assert no_face.model_version == rows[1].model_version and no_face.latency_ms > 0
        assert no_face.client == "api" and not no_face.consent
        body = client.get(
            "/api/analytics/confidence", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert body["total"] == 2 and body["no_face_share"] == 0.5
        assert sum(h["count"] for h in body["histogram"]) == 1
        classes = client.get(
            "/api/analytics/classes", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert classes["data"] == [{"label": "s2", "count": 1, "share": 1.0}]
