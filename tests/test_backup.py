"""Backup and restore (``lookalike backup`` / ``restore``): a round trip of a used service
compares every table and every object, and the restored service answers, signs in and
deletes as the original did. Across backends: a SQLite service restores into PostgreSQL
and the other way round (the ``database_url`` fixture names the source)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey
from support.api import Orl, api_settings, client_for, trained_home
from support.cli import run

from lookalike import accounts
from lookalike.api.state import app_state
from lookalike.backup import BackupError, backup, read_manifest, restore, table_rows
from lookalike.config import Settings
from lookalike.db import Base, make_engine
from lookalike.jobs import Jobs
from lookalike.storage import ObjectStore

PASSWORD = "correct horse battery staple"


@pytest.fixture
def source(
    tmp_path_factory: pytest.TempPathFactory, orl: Orl, tmp_path: Path, database_url: str
) -> Settings:
    home = tmp_path / "home"
    shutil.copytree(
        trained_home(tmp_path_factory, orl), home, ignore=shutil.ignore_patterns("*.sqlite3*")
    )
    return api_settings(home, database_url)


@pytest.fixture
def other_database(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[str]:
    """An empty database of the OTHER backend than the source's."""
    if database_url.startswith("sqlite"):
        from support.pg import new_database

        with new_database(request.getfixturevalue("postgres_url"), "restored") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"


def use(settings: Settings, orl: Orl) -> dict[str, Any]:
    """Use the service: kept photos, feedback, a contribution, an admin account."""
    with client_for(settings) as client:
        app_state(client.app)._jobs = Jobs(settings, MemoryHuey("backup", immediate=True))
        kept = client.post(
            "/api/predictions",
            files={"photo": ("a.pgm", orl["s1"][8].read_bytes())},
            data={"consent": "true"},
        ).json()
        client.post(
            f"/api/predictions/{kept['id']}/feedback",
            json={"feedback": "like", "token": kept["feedback_token"]},
        )
        client.post("/api/predictions", files={"photo": ("b.pgm", orl["s2"][8].read_bytes())})
        files = [("photo", (p.name, p.read_bytes())) for p in orl["s7"][:6]]
        joined = client.post(
            "/api/contributions", data={"display_name": "Ada", "consent": "true"}, files=files
        ).json()
        assert joined["status"] == "enrolled", joined
        with app_state(client.app).sessions() as session, session.begin():
            accounts.create_user(session, "alice", PASSWORD)
    return {"kept": kept, "joined": joined}


def rows(settings: Settings) -> dict[str, list[str]]:
    engine = make_engine(settings.effective_database_url)
    try:
        every = Base.metadata.sorted_tables  # the rollups too: rebuilt by the triggers
        return {
            table.name: sorted(json.dumps(r, sort_keys=True) for r in found)
            for table, found in table_rows(engine, every)
        }
    finally:
        engine.dispose()


def objects(settings: Settings) -> dict[str, str]:
    store = ObjectStore(settings)
    return {k: hashlib.sha256(store.get(k)).hexdigest() for k in store.iter_keys()}


def files(root: Path) -> dict[str, str]:
    wanted = [root / "dataset.json", root / "splits.json", *root.glob("models/**/*")]
    wanted += [*root.glob("images/**/*")]
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in wanted
        if p.is_file()
    }


def test_a_round_trip_keeps_every_row_object_and_file(
    source: Settings, other_database: str, orl: Orl, tmp_path: Path
) -> None:
    used = use(source, orl)
    folder = tmp_path / "backup"
    proc = run(
        "backup", folder, "--home", source.home, env={"LOOKALIKE_DATABASE_URL": source.database_url}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Backed up" in proc.stdout
    manifest = read_manifest(folder)
    assert manifest.rows["predictions"] == 2 and manifest.rows["contributions"] == 1
    assert manifest.rows["admin_users"] == 1 and manifest.objects_missing == 0

    target = api_settings(tmp_path / "restored", other_database)
    restored = restore(target, folder)
    assert restored.rows == manifest.rows
    assert rows(target) == rows(source)  # every table, row for row, across backends
    assert objects(target) == objects(source) and objects(source)
    assert files(Path(target.home)) == files(Path(source.home))

    with client_for(target) as client:  # the restored service works as the original did
        answer = client.post(
            "/api/predictions", files={"photo": ("c.pgm", orl["s7"][9].read_bytes())}
        ).json()
        assert answer["answer"]["names"] == ["Ada"]  # the enrolled contributor, from the rows
        assert answer["model_version"] == "m0001"
        gone = client.delete(
            f"/api/predictions/{used['kept']['id']}",
            params={"token": used["kept"]["deletion_token"]},
        )
        assert gone.status_code == 204  # the token's hash and the photo came back
        with app_state(client.app).sessions() as session:
            assert accounts.authenticate(session, "alice", PASSWORD) is not None
        with app_state(client.app).sessions() as session, session.begin():
            bob = accounts.create_user(session, "bob", PASSWORD)  # ids go on after restored ones
        assert bob.id == 2


def test_bad_backups_and_targets_are_refused(
    source: Settings, other_database: str, orl: Orl, tmp_path: Path
) -> None:
    with client_for(source):
        pass
    folder = tmp_path / "backup"
    backup(source, folder)
    with pytest.raises(BackupError) as busy:
        backup(source, folder)  # never into a folder that holds something
    assert "not empty" in busy.value.message

    with pytest.raises(BackupError) as full:  # never over a service's data
        restore(source, folder)
    assert full.value.code == "backup.refused" and "empty" in full.value.message

    model_file = next(folder.glob("data/models/*/arrays.npz"))
    model_file.write_bytes(model_file.read_bytes()[:-1])
    target = api_settings(tmp_path / "restored", other_database)
    with pytest.raises(BackupError) as damaged:
        restore(target, folder)
    assert damaged.value.code == "backup.damaged" and "models/" in damaged.value.message
    assert not (Path(target.home) / "dataset.json").exists()  # nothing was restored
    proc = run("restore", tmp_path / "nowhere", "--home", target.home)
    assert proc.returncode != 0 and "is not a backup" in proc.stdout + proc.stderr


def test_a_backup_taken_under_load_is_consistent(
    source: Settings, other_database: str, orl: Orl, tmp_path: Path
) -> None:
    """Visitors keep photos while the backup runs: every restored row that names a photo
    has it, and the rollups agree with the rows they count."""
    import threading

    from sqlalchemy import func, select

    from lookalike.db import PredictionRecord
    from lookalike.db.models import prediction_hours

    stop = threading.Event()
    sent: list[int] = []
    with client_for(source) as client:

        def visit() -> None:
            photo = orl["s3"][8].read_bytes()
            while not stop.is_set():
                r = client.post(
                    "/api/predictions", files={"photo": ("v.pgm", photo)}, data={"consent": "true"}
                )
                sent.append(r.status_code)

        worker = threading.Thread(target=visit)
        worker.start()
        try:
            while len(sent) < 3:  # the load has started
                stop.wait(0.05)
            manifest = backup(source, tmp_path / "backup")
        finally:
            stop.set()
            worker.join()
    assert set(sent) == {201} and len(sent) > manifest.rows["predictions"] > 0
    target = api_settings(tmp_path / "restored", other_database)
    restore(target, tmp_path / "backup")
    engine = make_engine(target.effective_database_url)
    try:
        with engine.connect() as connection:
            keys = connection.execute(select(PredictionRecord.storage_key)).scalars().all()
            counted = connection.execute(select(func.sum(prediction_hours.c.n))).scalar()
    finally:
        engine.dispose()
    assert len(keys) == manifest.rows["predictions"] == counted
    store = ObjectStore(target)
    assert all(key is not None and store.exists(key) for key in keys)
    # Photos kept after the snapshot are not restored: no row would let their owner delete them.
    assert sorted(store.iter_keys(prefix="consented/")) == sorted(k for k in keys if k)
    assert manifest.objects_skipped <= len(sent) - manifest.rows["predictions"]
