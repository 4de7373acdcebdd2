"""The analytics endpoints' filters (refused in the one error shape, clamped, defaulted,
local time from zoneinfo), admin-only access, and the CSV / JSON exports of the seeded log."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.analytics import (
    ENDPOINTS,
    LOG,
    RANGE,
    Dashboard,
    dashboard,
    seed,
)
from support.api import assert_error

from lookalike.analytics.filters import EARLIEST, LATEST, NO_MATCH, parse_filters
from lookalike.analytics.timebuckets import Clock, offset_intervals
from lookalike.zones import zone

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


def test_a_misspelt_filter_is_refused_not_ignored(board: Dashboard) -> None:
    details = assert_error(board.get("classes", lable="s1"), 422, "request.unknown_parameter")
    assert details["unknown"] == ["lable"] and "label" in details["allowed"]
    volume = assert_error(board.get("volume", buckett="day"), 422, "request.unknown_parameter")
    assert "bucket" in volume["allowed"]  # each endpoint's own parameters
    assert board.get("volume", bucket="day").status_code == 200


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
    assert ",".join(rows[0]) == (  # the columns, in order
        "id,created_at,model_version,label,best_label,probability,match_score,no_strong_match,"
        "faces_found,frames_used,latency_ms,client,feedback,feedback_label"
    )
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
