"""The rollup tables kept by triggers in step with the prediction log, migration 0003's
backfill and downgrade, and requests without a face logged and counted; SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from sqlalchemy import select, text
from support.analytics import (
    LOG,
    seed,
    utc,
)
from support.api import Orl, api_settings, assert_error, client_for, linked_home, trained_home

from lookalike.analytics.facts import HOURS_COLUMNS, L_BINS, LABELS_COLUMNS, log_columns, log_ts
from lookalike.api.state import app_state
from lookalike.db import PredictionRecord, init_db, make_engine, session_factory
from lookalike.db.migrate import alembic_config, upgrade
from lookalike.db.models import latency_bin

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
            rows = {r.created_at: r for r in session.scalars(select(PredictionRecord))}
            rows[utc(LOG[0].at)].feedback = "like"  # feedback given later
            rows[utc(LOG[9].at)].feedback = None  # and withdrawn
            rows[utc(LOG[2].at)].created_at = utc("2026-06-01T12:00:00")  # moved
            rows[utc(LOG[3].at)].storage_key = "consented/x.jpg"  # not summarised
            session.delete(rows[utc(LOG[6].at)])
            session.delete(rows[utc(LOG[4].at)])
        assert_rollups_match(database_url)
        with sessions() as session, session.begin():
            for row in session.scalars(select(PredictionRecord)):
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
    from support.api import encode

    settings = api_settings(linked_home(trained, tmp_path / "home"), database_url)
    token = None
    with client_for(settings) as client:
        coffee = [("photo", ("coffee.jpg", encode(nonfaces["coffee"]), "image/jpeg"))]
        assert_error(client.post("/api/predictions", files=coffee), 422, "face.not_found")
        face = [("photo", ("me.pgm", orl["s2"][9].read_bytes(), "image/x-portable-graymap"))]
        assert client.post("/api/predictions", files=face).status_code == 201
        with app_state(client.app).sessions() as session:
            rows = list(
                session.scalars(select(PredictionRecord).order_by(PredictionRecord.created_at))
            )
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
