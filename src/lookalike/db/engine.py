"""Engines and sessions for the prediction log (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

# Seconds a SQLite connection waits for another writer before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30.0


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` and ``postgres://`` use psycopg 3 (installed)."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the database file to WAL (persistent), retrying while another connection is busy.

    Changing the journal mode needs an exclusive lock and SQLite reports "database is locked"
    at once, without waiting on busy_timeout, when another connection holds any lock (two
    processes opening a brand-new database). Once in WAL, this is a cheap no-op.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            locked = "locked" in str(exc) or "busy" in str(exc)
            if not locked or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; much faster commits
    finally:
        cursor.close()


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url`` with ``pool_pre_ping``; SQLite gets WAL + foreign keys on connect.

    For a SQLite file, its parent directory is created. Extra ``kwargs`` go to ``create_engine``.
    """
    parsed = normalize_url(url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit (no expire)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def sqlite_immediate_transactions(engine: Engine) -> None:
    """Make ``engine``'s transactions real ``BEGIN IMMEDIATE`` ones (SQLite only).

    pysqlite normally runs DDL outside any transaction and begins lazily; migrations need the
    write lock up front so two processes upgrading at once run one after the other.
    """

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
