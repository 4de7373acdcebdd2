"""The dashboard's analytics endpoints on SQLite and PostgreSQL: exact numbers on a log seeded
with known values (``support.analytics.LOG``: a month boundary and both DST changes of
Europe/Paris), per class, day, week, month and hour, latency, confidence, feedback, accuracy
and drift."""

from __future__ import annotations

from support.analytics import (
    RANGE,
    UNIFORM,
    Dashboard,
)

from lookalike.analytics.filters import NO_MATCH

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
