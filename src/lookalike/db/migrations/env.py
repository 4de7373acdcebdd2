"""Alembic environment for the packaged migrations.

Run programmatically by :func:`lookalike.db.migrate.init_db`, which passes an open connection
(``config.attributes["connection"]``, already inside a locked transaction) or a URL
(``config.attributes["url"]``). ``sqlalchemy.url`` in an ini file works too, for the
``alembic`` command line.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from lookalike.db.engine import make_engine
from lookalike.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str | URL:
    url: str | URL | None = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass Config.attributes['url'] or sqlalchemy.url")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER via table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
