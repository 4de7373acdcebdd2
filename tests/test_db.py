"""The prediction log: migrations, idempotent init, round trips, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from lookalike.db import (
    Base,
    PredictionRecord,
    Upload,
    current_revision,
    head_revision,
    init_db,
    make_engine,
    session_factory,
)
from lookalike.db.migrate import alembic_config


def _prediction(**overrides: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "model_version": "v0001",
        "label": "s1",
        "best_label": "s1",
        "probability": 0.8125,
        "probabilities": [
            {"label": "s1", "probability": 0.8125},
            {"label": "Zoë O'Neil", "probability": 0.1875},
        ],
        "match_score": 0.61,
        "no_strong_match": False,
        "faces_found": 1,
        "face_index": None,
        "frames_used": 5,
        "latency_ms": 41.5,
        "client": "web",
        "consent": True,
        "storage_key": "consented/abc",
        "deletion_token_hash": "0" * 64,
    }
    fields.update(overrides)
    return PredictionRecord(**fields)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh, migrated database (SQLite, then PostgreSQL)."""
    init_db(database_url)
    engine = make_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def test_init_db_creates_the_schema_and_is_idempotent(database_url: str) -> None:
    init_db(database_url)
    init_db(database_url)  # a second call (a restart) changes nothing and does not fail
    engine = make_engine(database_url)
    try:
        inspector = inspect(engine)
        assert {"predictions", "uploads", "alembic_version"} <= set(inspector.get_table_names())
        for table in Base.metadata.sorted_tables:  # the migration matches the models
            columns = {c["name"]: c for c in inspector.get_columns(table.name)}
            assert set(columns) == set(table.columns.keys()), table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, column
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []  # nothing to autogenerate
        indexes = {ix["name"] for ix in inspector.get_indexes("predictions")}
        assert {"ix_predictions_created_at", "ix_predictions_label"} <= indexes
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision() == "0005"
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_prediction_round_trip_keeps_json_and_aware_utc_datetimes(
    sessions: sessionmaker[Session],
) -> None:
    created = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
    feedback_at = datetime(2024, 5, 17, 14, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    with sessions() as session:
        row = _prediction(created_at=created, feedback="like", feedback_at=feedback_at)
        session.add(row)
        session.add(_prediction(label=None, no_strong_match=True))  # defaults fill id/time
        session.commit()
        pid = row.id
    assert len(pid) == 32
    with sessions() as session:
        got = session.get(PredictionRecord, pid)
        assert got is not None
        assert got.created_at == created
        assert got.created_at.utcoffset() == timedelta(0)
        assert got.feedback_at == feedback_at  # same instant ...
        assert got.feedback_at is not None and got.feedback_at.utcoffset() == timedelta(0)
        assert got.feedback_at.hour == 12  # ... returned in UTC
        assert got.probabilities[1] == {"label": "Zoë O'Neil", "probability": 0.1875}
        assert got.probability == 0.8125 and got.latency_ms == 41.5
        assert got.consent is True and got.no_strong_match is False
        assert got.face_index is None and got.frames_used == 5

        other = session.scalars(
            select(PredictionRecord).where(PredictionRecord.label.is_(None))
        ).one()
        assert other.no_strong_match is True
        assert other.created_at.tzinfo is not None
        assert abs(other.created_at - datetime.now(UTC)) < timedelta(minutes=5)
        newest = session.scalars(
            select(PredictionRecord).where(PredictionRecord.created_at > created).limit(5)
        ).all()
        assert [p.id for p in newest] == [other.id]  # aware comparisons work in SQL


def test_naive_datetimes_and_bad_values_are_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.add(_prediction(created_at=datetime(2024, 1, 1)))
        with pytest.raises(StatementError, match="naive datetime"):
            session.commit()
    with sessions() as session:
        session.add(_prediction(client="browser"))
        with pytest.raises(IntegrityError):
            session.commit()
    with sessions() as session:
        session.add(_prediction(feedback="meh"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_upload_round_trip(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with sessions() as session:
        session.add(
            Upload(
                key="k" * 43,
                expires_at=now + timedelta(seconds=300),
                content_type="image/jpeg",
                max_bytes=12345,
            )
        )
        session.commit()
    with sessions() as session:
        upload = session.get(Upload, "k" * 43)
        assert upload is not None
        assert upload.created_at.tzinfo is not None and upload.size is None
        assert upload.received_at is None and upload.consumed_at is None
        upload.size, upload.received_at = 12000, now
        session.commit()
    with sessions() as session:
        expired = session.scalars(
            select(Upload).where(Upload.expires_at < now + timedelta(hours=1))
        ).all()
        assert [(u.size, u.received_at) for u in expired] == [(12000, now)]


def test_concurrent_init_db_from_two_threads(database_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            init_db(database_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_sqlite_pragmas_and_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "db.sqlite3"
    init_db(f"sqlite:///{path}")
    assert path.is_file()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_init_db_with_percent_signs_in_the_url(database_url: str, tmp_path: Path) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        url = url.set(database=str(tmp_path / "100%" / "db%41.sqlite3"))
    else:
        url = url.set(password="p%ss%41")  # trust auth: accepted, but it must not break config
    init_db(url.render_as_string(hide_password=False))
    init_db(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()
    if url.get_backend_name() == "sqlite":
        assert (tmp_path / "100%" / "db%41.sqlite3").is_file()


def test_alembic_config_keeps_percent_signs_in_urls() -> None:
    url = "postgresql+psycopg://user:p%25ss%@localhost/db"
    config = alembic_config(url)
    assert config.attributes["url"].drivername == "postgresql+psycopg"
    assert config.attributes["url"].password == "p%ss%"
    assert config.get_main_option("script_location", "").endswith("migrations")
    assert head_revision() == "0005"
