"""The enrolled gallery's faiss index shared through the object store: a process publishes a
snapshot of it, a process starting cold seeds its index from that snapshot and reads from the
database only what changed since; a damaged or foreign snapshot, or a store that cannot be
reached, leaves the index built from the database as before. Against the S3 test server and a
SQLite database of real ``contributions`` rows (synthetic unit embeddings, 40 contributors of
8 crops, an index from 200 crops on, so faiss is used)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from support.s3 import CheckedMotoServer, endpoint, s3_server, s3_settings
from support.server import free_port

from lookalike.config import Settings
from lookalike.db import Contribution
from lookalike.db.engine import make_engine
from lookalike.db.migrate import init_db
from lookalike.enrolled import (
    EnrolledGallery,
    EnrolledMatch,
    Snapshot,
    snapshot_key,
)
from lookalike.scoring.index import IvfIndex
from lookalike.storage import ObjectStore, validate_key

BUCKET = "lookalike-indexes"
KEY = "face@1+sface:0123abcd"  # characters object keys refuse: the snapshot's key is hashed
DIM = 32
PEOPLE = 40
CROPS = 8
MIN_SIZE = 200
TOP_K = 3


@pytest.fixture(scope="module")
def s3() -> Iterator[CheckedMotoServer]:
    with s3_server() as server:
        yield server


@pytest.fixture
def settings(s3: CheckedMotoServer, tmp_path: Path, request: Any) -> Settings:
    base = Settings(home=tmp_path / "home", enrolled_index_min_size=MIN_SIZE)
    return s3_settings(base, endpoint(s3), BUCKET, request.node.name)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    init_db(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


class People:
    """Synthetic contributors: a centre each, crops and query photos around it."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres: dict[str, np.ndarray] = {}

    def unit(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
        return out

    def enrol(self, engine: Engine, cid: str, key: str = KEY, dim: int = DIM) -> None:
        centre = self.unit(self.rng.normal(size=dim))
        self.centres[cid] = centre
        crops = self.unit(centre + 0.3 * self.rng.normal(size=(CROPS, dim)) / np.sqrt(dim))
        with Session(engine) as session:
            session.add(
                Contribution(
                    id=cid,
                    display_name=f"name {cid}",
                    media="photos",
                    sources=[],
                    status="enrolled",
                    crops=CROPS,
                    backbone_key=key,
                    embeddings=crops.tobytes(),
                    approved=True,
                    deletion_token_hash="0" * 64,
                    updated_at=datetime.now(UTC),
                )
            )
            session.commit()

    def photo(self, cid: str) -> np.ndarray:
        centre = self.centres[cid]
        return self.unit(centre + 0.3 * self.rng.normal(size=len(centre)) / np.sqrt(len(centre)))


@pytest.fixture
def people(engine: Engine) -> People:
    people = People()
    for i in range(PEOPLE):
        people.enrol(engine, f"c{i:03d}")
    return people


def gallery(engine: Engine, settings: Settings | None) -> EnrolledGallery:
    store = ObjectStore(settings) if settings is not None else None
    return EnrolledGallery(engine, TOP_K, MIN_SIZE, store)


def answers(g: EnrolledGallery, queries: list[np.ndarray]) -> list[EnrolledMatch | None]:
    return [g.match(q, KEY) for q in queries]


def same(got: list[EnrolledMatch | None], want: list[EnrolledMatch | None]) -> None:
    """The same contributor, crop and score (to float precision) for every query."""
    assert [(m.contribution_id, m.crop) if m else None for m in got] == [
        (m.contribution_id, m.crop) if m else None for m in want
    ]
    for a, b in zip(got, want, strict=True):
        assert a is not None and b is not None
        assert a.score == pytest.approx(b.score, abs=1e-5)


def published(settings: Settings, engine: Engine) -> EnrolledGallery:
    """Gallery A, whose first request builds the index and publishes its snapshot."""
    a = gallery(engine, settings)
    a.match(np.ones(DIM, np.float32) / np.sqrt(DIM), KEY)
    a.wait_published(30)
    assert ObjectStore(settings).exists(snapshot_key(KEY))
    return a


def test_a_fresh_gallery_seeds_from_the_snapshot_and_answers_the_same(
    settings: Settings, engine: Engine, people: People
) -> None:
    assert validate_key(snapshot_key(KEY)).startswith("indexes/enrolled/face-1-sface-0123abcd-")
    a = published(settings, engine)
    assert a.embeddings_read == PEOPLE and isinstance(a._spaces[KEY].index, IvfIndex)
    assert a._spaces[KEY].changed == 0  # what it published is counted as shared
    queries = [people.photo(f"c{i:03d}") for i in range(0, PEOPLE, 3)]

    b = gallery(engine, settings)
    got = answers(b, queries)
    assert b.embeddings_read == 0  # every contributor came from the snapshot
    assert isinstance(b._spaces[KEY].index, IvfIndex) and len(b._spaces[KEY].versions) == PEOPLE
    same(got, answers(a, queries))
    assert [m.contribution_id for m in got if m] == [f"c{i:03d}" for i in range(0, PEOPLE, 3)]
    same(got, answers(gallery(engine, None), queries))  # as the database alone answers
    b.wait_published(30)
    assert b._publisher is None  # nothing changed: nothing to publish again


def test_changes_since_the_snapshot_are_applied_on_load(
    settings: Settings, engine: Engine, people: People
) -> None:
    published(settings, engine)
    with Session(engine) as session:  # deleted after the snapshot: no longer enrolled
        row = session.get(Contribution, "c005")
        assert row is not None
        row.status, row.updated_at = "refused", datetime.now(UTC) + timedelta(seconds=1)
        session.commit()
    people.enrol(engine, "new01")  # joined after the snapshot
    queries = [people.photo(cid) for cid in ("c005", "new01", "c007", "c030")]

    b = gallery(engine, settings)
    got = answers(b, queries)
    assert b.embeddings_read == 1  # only the newcomer's embeddings were read
    assert "c005" not in b._spaces[KEY].versions
    assert got[0] is not None and got[0].contribution_id != "c005"
    assert [m.contribution_id for m in got[1:] if m] == ["new01", "c007", "c030"]
    same(got, answers(gallery(engine, None), queries))


def test_a_snapshot_is_published_again_once_a_tenth_has_changed(
    settings: Settings, engine: Engine, people: People
) -> None:
    a = published(settings, engine)
    store = ObjectStore(settings)
    first = store.get(snapshot_key(KEY))
    people.enrol(engine, "new01")  # 8 crops of 328: under a tenth, not published
    a.match(people.photo("new01"), KEY)
    a.wait_published(30)
    assert store.get(snapshot_key(KEY)) == first and a._spaces[KEY].changed == CROPS
    for i in range(4):  # 40 crops of 360 changed since the snapshot: published
        people.enrol(engine, f"more{i}")
    a.match(people.photo("more0"), KEY)
    a.wait_published(30)
    assert store.get(snapshot_key(KEY)) != first and a._spaces[KEY].changed == 0
    b = gallery(engine, settings)
    assert b.match(people.photo("more3"), KEY).contribution_id == "more3"  # type: ignore[union-attr]
    assert b.embeddings_read == 0


def test_a_damaged_or_foreign_snapshot_is_ignored(
    settings: Settings, engine: Engine, people: People, caplog: pytest.LogCaptureFixture
) -> None:
    a = published(settings, engine)
    store = ObjectStore(settings)
    queries = [people.photo(f"c{i:03d}") for i in range(0, PEOPLE, 4)]
    want = answers(gallery(engine, None), queries)
    snapshot = store.get(snapshot_key(KEY))
    flipped = bytearray(snapshot)
    flipped[len(flipped) // 2] ^= 0xFF
    foreign = Snapshot.of("image@1", a._spaces[KEY]).encode()  # another space's index
    for bad in (b"garbage bytes, not a snapshot", bytes(flipped), foreign):
        store.put(snapshot_key(KEY), bad)
        caplog.clear()
        b = gallery(engine, settings)
        with caplog.at_level(logging.WARNING, logger="lookalike.enrolled"):
            same(answers(b, queries), want)
        assert b.embeddings_read == PEOPLE  # built from the database
        assert any("ignored" in r.getMessage() for r in caplog.records)
        b.wait_published(30)  # and the good one it built replaces the bad one
        assert store.get(snapshot_key(KEY)) != bad


def test_a_snapshot_of_another_dimension_is_ignored(
    settings: Settings, engine: Engine, people: People
) -> None:
    """Rows of one backbone key whose embeddings are not the snapshot's dimension."""
    a = published(settings, engine)
    other = "other@2"
    store = ObjectStore(settings)
    store.put(snapshot_key(other), Snapshot.of(other, a._spaces[KEY]).encode())
    wide = People(seed=1)
    for i in range(30):
        wide.enrol(engine, f"w{i:02d}", key=other, dim=DIM * 2)
    b = gallery(engine, settings)
    found = b.match(wide.photo("w07"), other)
    assert found is not None and found.contribution_id == "w07"
    assert b.embeddings_read == 30  # KEY's people from their own snapshot, no one from this
    assert len(b._spaces[other].versions) == 30


def test_an_unreachable_store_still_answers_from_the_database(
    settings: Settings, engine: Engine, people: People, caplog: pytest.LogCaptureFixture
) -> None:
    closed = settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    queries = [people.photo(f"c{i:03d}") for i in range(0, PEOPLE, 5)]
    b = gallery(engine, closed)
    with caplog.at_level(logging.WARNING, logger="lookalike.enrolled"):
        got = answers(b, queries)
        b.wait_published(60)
    assert [m.contribution_id for m in got if m] == [f"c{i:03d}" for i in range(0, PEOPLE, 5)]
    same(got, answers(gallery(engine, None), queries))
    assert b.embeddings_read == PEOPLE
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert any("publishing" in r.getMessage() for r in caplog.records)  # logged, not raised
