"""Create or upgrade the schema with the Alembic migrations shipped inside the package.

No ``alembic.ini`` is needed: the configuration is built in code and points at
``lookalike/db/migrations``. The URL and the open connection travel in
``Config.attributes`` (never through the ini interpolation, so ``%`` in passwords is fine).

Two processes may call :func:`init_db` at once (several web workers starting): the upgrade
runs in one transaction holding a lock (``pg_advisory_xact_lock`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so the second waits and then finds the schema at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL

from lookalike.db.engine import make_engine, normalize_url, sqlite_immediate_transactions

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant 64-bit key; only init_db takes this advisory lock.
PG_MIGRATION_LOCK = 7_401_337_001


def alembic_config(url: str | URL | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations (URL/connection passed as attributes)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.attributes["url"] = normalize_url(url)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration shipped with this version of the package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None when it was never initialised)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` in one locked transaction."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK}
            )
        command.upgrade(alembic_config(engine.url, connection), revision)


def init_db(url: str | URL) -> None:
    """Create the tables (or upgrade them) to the newest schema; safe to call again and again.

    A database already at the newest revision is only read: no write lock is taken, so
    opening it never waits behind another process's long transaction."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if current_revision(connection) == head_revision():
                return
    finally:
        engine.dispose()
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        sqlite_immediate_transactions(engine)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
