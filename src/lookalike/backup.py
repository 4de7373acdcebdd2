"""Backups: ``lookalike backup PATH`` and ``lookalike restore PATH``, while the service runs.

A backup is a folder::

    manifest.json          format, when, the schema revision, rows per table, files' SHA-256
    db/<table>.jsonl.gz    every row of every table, one JSON object a line
    data/...               the data dir: dataset.json, splits.json, images/, models/, names/,
                           backbones/, reports/, cache/embeddings.sqlite (not the job queue:
                           its jobs are transient)
    objects/<key>          the object store: kept photos, contributions, uploads

The analytics rollups are left out: the predictions' triggers rebuild them as the rows are
restored. Rows are written as JSON lines, not as one engine's dump, so a backup of SQLite restores
into PostgreSQL and back, and needs no ``pg_dump`` of the server's version. Each column is
encoded by its type (bytes as base64, timestamps as ISO 8601 in UTC).

Consistent while the service runs, in this order: every table is read in ONE transaction
(a snapshot: REPEATABLE READ on PostgreSQL, a read transaction on SQLite's WAL); then the
data dir, whose catalog and splits are copied under their locks and whose model versions
are immutable once in place (an artifact is written before its registry row, so every
version the snapshot names is there); then the objects (written before the rows that name
them). What the service adds meanwhile is either wholly in the backup or not at all: a
personal object (a kept photo, a contribution's files, an upload) is copied only when a row
of the snapshot names it, so no photo is restored that its owner could not delete; an
object deleted after the snapshot is counted in the manifest (``objects_missing``).

Restore goes into an empty data dir and an empty database of the same schema revision (the
migrations create it), inserts the rows in foreign-key order, moves PostgreSQL's sequences
past the restored ids, then copies the files and checks every SHA-256.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, LargeBinary, Table, insert, select, text
from sqlalchemy.types import DateTime, TypeEngine

from lookalike.config import Settings
from lookalike.db import Base, init_db, make_engine
from lookalike.db.migrate import current_revision, head_revision
from lookalike.errors import LookalikeError
from lookalike.fsutil import atomic_write_json, file_lock
from lookalike.registry import Registry
from lookalike.storage import ObjectStore

FORMAT = 1
BATCH = 5000  # rows inserted at once when restoring


class BackupError(LookalikeError):
    status = 409
    code = "backup.refused"


@dataclass
class Manifest:
    format: int
    created_at: str
    database: str  # the backend it came from: sqlite | postgresql
    revision: str | None  # the schema (Alembic) revision
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # path in the backup -> sha256
    objects_missing: int = 0  # deleted after the database snapshot
    objects_skipped: int = 0  # personal objects no row of the snapshot names (newer ones)


class References:
    """The personal objects the rows of a snapshot name (see the module docstring)."""

    PERSONAL = ("consented/", "contributions/", "uploads/")

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.prefixes: list[str] = []

    def note(self, table: str, row: dict[str, Any]) -> None:
        if table == "predictions" and row.get("storage_key"):
            self.keys.add(str(row["storage_key"]))
        elif table == "contributions":
            self.prefixes.append(f"contributions/{row['id']}/")
        elif table == "uploads":
            self.keys.add(f"uploads/{row['key']}")

    def wanted(self, key: str) -> bool:
        if not key.startswith(self.PERSONAL):
            return True
        return key in self.keys or key.startswith(tuple(self.prefixes))


# --- rows ---------------------------------------------------------------------------------------


def _is(kind: type[TypeEngine[Any]], column_type: TypeEngine[Any]) -> bool:
    impl = getattr(column_type, "impl", column_type)
    return isinstance(column_type, kind) or isinstance(impl, kind)


def _encode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for column in table.columns:
        value = row[column.name]
        if value is not None and _is(LargeBinary, column.type):
            value = base64.b64encode(value).decode("ascii")
        elif value is not None and _is(DateTime, column.type):
            value = value.astimezone(UTC).isoformat()
        out[column.name] = value
    return out


def _decode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for column in table.columns:
        value = row.get(column.name)
        if value is not None and _is(LargeBinary, column.type):
            value = base64.b64decode(value)
        elif value is not None and _is(DateTime, column.type):
            value = datetime.fromisoformat(value)
        out[column.name] = value
    return out


def stored_tables() -> list[Table]:
    """The tables a backup holds, in foreign-key order: not the analytics rollups, which the
    predictions' triggers rebuild as the rows are restored."""
    return [t for t in Base.metadata.sorted_tables if not t.info.get("derived")]


def table_rows(
    engine: Engine, tables: list[Table] | None = None
) -> Iterator[tuple[Table, Iterator[dict[str, Any]]]]:
    """The tables' rows (encoded), all read in one transaction: one snapshot."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", stream_results=True
            )
        with connection.begin():
            for table in stored_tables() if tables is None else tables:
                result = connection.execute(select(table).order_by(*table.primary_key.columns))
                yield table, (_encode(table, dict(r._mapping)) for r in result)


# --- files ----------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(
            source,
            target,
            ignore=shutil.ignore_patterns(".building-*", "*.tmp", ".*"),
            dirs_exist_ok=True,
        )


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file in use (the embedding cache): its backup API."""
    if not source.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _copy_data_dir(settings: Settings, target: Path) -> None:
    data = settings.data_dir

    def to(path: Path) -> Path:
        return target / path.relative_to(data.root)

    with file_lock(data.catalog_lock):  # the catalog and its blobs agree
        if data.catalog.is_file():
            shutil.copy2(data.catalog, to(data.catalog))
        _copy_tree(data.images, to(data.images))
    with file_lock(data.splits_lock):
        if data.splits.is_file():
            shutil.copy2(data.splits, to(data.splits))
    # Versions never change once renamed into place ("building" ones are left out).
    for tree in (data.models, data.names, data.backbones, data.reports):
        _copy_tree(tree, to(tree))
    _copy_sqlite(data.embedding_cache, to(data.embedding_cache))


# --- backup and restore ---------------------------------------------------------------------------


def backup(settings: Settings, path: Path) -> Manifest:
    """Write a backup of the service's database, data dir and objects into ``path`` (a new
    or empty folder)."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise BackupError(
            f"{path} is not empty: back up into a new folder (each backup is a folder of its own).",
            details={"path": str(path)},
        )
    engine = make_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
        manifest = Manifest(FORMAT, datetime.now(UTC).isoformat(), engine.dialect.name, revision)
        (path / "db").mkdir(parents=True)
        references = References()
        for table, rows in table_rows(engine):
            count = 0
            with gzip.open(path / "db" / f"{table.name}.jsonl.gz", "wt", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                    references.note(table.name, row)
                    count += 1
            manifest.rows[table.name] = count
    finally:
        engine.dispose()
    (path / "data").mkdir()
    _copy_data_dir(settings, path / "data")
    store = ObjectStore(settings)
    for key in store.iter_keys():
        if not references.wanted(key):
            manifest.objects_skipped += 1
            continue
        try:
            data = store.get(key)
        except LookalikeError:
            manifest.objects_missing += 1  # deleted after the snapshot
            continue
        target = path / "objects" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        manifest.files[file.relative_to(path).as_posix()] = _sha256(file)
    atomic_write_json(path / "manifest.json", manifest.__dict__)
    return manifest


def read_manifest(path: Path) -> Manifest:
    try:
        raw = json.loads((Path(path) / "manifest.json").read_text())
        manifest = Manifest(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(
            f"{path} is not a backup (its manifest.json cannot be read: {exc}). Give the folder"
            " that `lookalike backup` wrote.",
            code="backup.unreadable",
            details={"path": str(path)},
        ) from exc
    if manifest.format != FORMAT:
        raise BackupError(
            f"Backup format {manifest.format} is not known here (expected {FORMAT}).",
            code="backup.unreadable",
        )
    return manifest


def verify(path: Path, manifest: Manifest) -> None:
    """Every file the manifest names is there, with its SHA-256."""
    for name, digest in manifest.files.items():
        file = Path(path) / name
        if not file.is_file() or _sha256(file) != digest:
            raise BackupError(
                f"The backup is damaged: {name} is missing or changed. Nothing was restored.",
                code="backup.damaged",
                details={"file": name},
            )


def _refuse_unless_empty(settings: Settings, engine: Engine) -> None:
    data = settings.data_dir
    present = [
        p.name
        for p in (data.catalog, data.models, data.objects)
        if p.exists() and (p.is_file() or any(p.iterdir()))
    ]
    with engine.connect() as connection:
        filled = [
            t.name
            for t in Base.metadata.sorted_tables
            if connection.execute(select(t).limit(1)).first() is not None
        ]
    if present or filled:
        raise BackupError(
            "Restore goes into an empty data dir and an empty database; found "
            + "; ".join(
                part
                for part in (
                    f"files: {', '.join(present)}" if present else "",
                    f"rows in: {', '.join(filled[:5])}" if filled else "",
                )
                if part
            )
            + ". Point --home (and database_url) at new ones.",
            details={"files": present, "tables": filled},
        )


def restore(settings: Settings, path: Path) -> Manifest:
    """Restore the backup in ``path`` into ``settings``' (empty) data dir and database."""
    path = Path(path)
    manifest = read_manifest(path)
    verify(path, manifest)
    url = settings.effective_database_url
    init_db(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
        if manifest.revision != revision or revision != head_revision():
            raise BackupError(
                f"The backup's schema revision is {manifest.revision}, this database's"
                f" {revision}: restore with the lookalike version that made the backup.",
                code="backup.revision",
            )
        _refuse_unless_empty(settings, engine)
        with engine.begin() as connection:
            for table in stored_tables():
                source = path / "db" / f"{table.name}.jsonl.gz"
                if not source.is_file():
                    continue
                batch: list[dict[str, Any]] = []
                with gzip.open(source, "rt", encoding="utf-8") as f:
                    for line in f:
                        batch.append(_decode(table, json.loads(line)))
                        if len(batch) >= BATCH:
                            connection.execute(insert(table), batch)
                            batch = []
                if batch:
                    connection.execute(insert(table), batch)
            if engine.dialect.name == "postgresql":
                _advance_sequences(connection)
    finally:
        engine.dispose()
    data = settings.data_dir
    data.root.mkdir(parents=True, exist_ok=True)
    _copy_tree(path / "data", data.root)
    store = ObjectStore(settings)
    objects = path / "objects"
    for file in sorted(p for p in objects.rglob("*") if p.is_file()) if objects.is_dir() else []:
        store.put(file.relative_to(objects).as_posix(), file.read_bytes())
    # With a remote store, other machines fetch model versions and reference photos there.
    with Registry(settings) as registry:
        registry.publish_all()
    return manifest


def _advance_sequences(connection: Any) -> None:
    """Serial ids go on after the restored ones (inserting explicit ids does not move them)."""
    for table in Base.metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True or (
                column.autoincrement == "auto" and column.type.python_type is int
            ):
                connection.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence(:t, :c),"
                        f" COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                    ),
                    {"t": table.name, "c": column.name},
                )
