"""The review queue's engine (``data/decisions.py``, ``data/apply_decisions.py``): flagged
photos and visitors' kept photos in one queue, decisions that wait, can be undone until a
retrain applies them, and then change the dataset. Real ORL faces, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from support.review import DUPLICATE, PLANTED, Orl, flawed_home, kept_photo

from lookalike.config import Settings
from lookalike.data.apply_decisions import apply_review_decisions
from lookalike.data.cache import embedding_cache
from lookalike.data.decisions import (
    KINDS,
    LOW_CONFIDENCE,
    VISITOR_FEEDBACK,
    ReviewConflict,
    ReviewError,
    audit_trail,
    decide,
    review_queue,
    undo,
)
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore
from lookalike.data.visitors import gather_visitor_photos
from lookalike.db import init_db, make_engine, session_factory
from lookalike.db.models import PredictionRecord, ReviewDecision
from lookalike.errors import NotFound
from lookalike.storage import ObjectStore


@pytest.fixture(scope="module")
def flawed(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Settings:
    return flawed_home(tmp_path_factory.mktemp("review_queue"), orl)


@pytest.fixture
def settings(flawed: Settings, tmp_path: Path, database_url: str) -> Settings:
    """A copy of the flawed data dir (the tests change it) and a fresh database."""
    home = tmp_path / "home"
    shutil.copytree(flawed.home, home)
    init_db(database_url)
    return Settings(
        home=home,
        backbone="face",
        database_url=database_url,
        review_low_confidence_rate=1.0,
        review_low_confidence_max=1,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.effective_database_url)
    yield engine
    engine.dispose()


def by_source(settings: Settings, source: str) -> str:
    found = [r.sha256 for r in DatasetStore(settings).load().images.values() if r.source == source]
    assert len(found) == 1, source
    return found[0]


def test_flags_are_grouped_worst_first_and_decisions_apply_at_the_retrain(
    settings: Settings, engine: Engine
) -> None:
    planted, duplicate = by_source(settings, PLANTED), by_source(settings, DUPLICATE)
    with session_factory(engine)() as session:
        queue = review_queue(settings, session)
    kinds = [KINDS.index(i.kind) for i in queue.items]
    assert kinds == sorted(kinds)  # grouped by kind, in the queue's order
    first = queue.items[0]
    assert (first.kind, first.sha256, first.label) == ("likely_mislabelled", planted, "s1")
    assert first.suggested_label == "s2" and "never saw it" in first.reason
    dupes = [i for i in queue.items if i.kind == "near_duplicate"]
    assert [i.sha256 for i in dupes] == [duplicate] or dupes[0].label == "s3"
    dupe_item = dupes[0]
    assert queue.classes == ["s1", "s2", "s3", "s4"]

    with session_factory(engine)() as session:
        relabel = decide(settings, session, first.id, "relabel", "alice", label=" s2 ")
        assert (relabel.label_before, relabel.label_after) == ("s1", "s2")
        delete = decide(settings, session, dupe_item.id, "delete", "alice")
        keep = decide(settings, session, dupe_item.id, "keep", "bob")  # replaces the delete
        undone = undo(session, keep.id, "bob")
        assert undone.undone_by == "bob" and undone.undone_at is not None
        delete_again = decide(settings, session, dupe_item.id, "delete", "alice")
    # Decisions persist across filters: the pending one shows on every view of the photo.
    with session_factory(engine)() as session:
        s1 = review_queue(settings, session, label="s1").items
        assert {i.label for i in s1} == {"s1"}
        mine = [i for i in s1 if i.sha256 == planted]
        assert mine and all(i.pending is not None and i.pending.id == relabel.id for i in mine)
        only = review_queue(settings, session, kind="near_duplicate").items
        assert [i.pending.id if i.pending else None for i in only if i.id == dupe_item.id] == [
            delete_again.id
        ]
        trail = audit_trail(session)
        assert [r.id for r in trail] == [delete_again.id, keep.id, delete.id, relabel.id]
        assert trail[2].undone_by == "bob"  # replaced by bob's keep: stamped, not rewritten

    blob = DatasetStore(settings).path_of(DatasetStore(settings).load().images[duplicate])
    cache = embedding_cache(settings.data_dir)
    backbone = json.loads((settings.data_dir.dataset_check).read_text())["backbone"]
    assert blob.exists() and cache.get(backbone, duplicate) is not None
    report = apply_review_decisions(settings, engine)
    assert (report.applied, report.relabelled, report.removed) == (2, 1, 1)
    catalog = DatasetStore(settings).load()
    assert catalog.images[planted].label == "s2"
    assert duplicate not in catalog.images
    assert not blob.exists()
    assert cache.get(backbone, duplicate) is None
    splits = SplitStore(settings).load()
    frozen = {h for v in splits.test_versions for h in v.added}  # the test set never shrinks
    assert (duplicate in splits.assignments) == (duplicate in frozen)
    with session_factory(engine)() as session:
        rows = {r.id: r for r in session.scalars(select(ReviewDecision)).all()}
        assert rows[relabel.id].applied_revision == catalog.revision
        assert rows[relabel.id].result == "relabelled from 's1' to 's2'"
        assert rows[delete_again.id].result == "removed from the dataset"
        assert rows[delete.id].applied_at is None  # undone ones are never applied
        with pytest.raises(ReviewConflict) as refused:
            undo(session, relabel.id, "alice")
        assert refused.value.code == "review.already_applied"
        with pytest.raises(ReviewConflict):
            undo(session, keep.id, "alice")  # already undone
        with pytest.raises(NotFound):
            undo(session, 10_000, "alice")
        left = {i.sha256 for i in review_queue(settings, session).items}
    assert planted not in left and duplicate not in left  # applied: out of the queue
    again = apply_review_decisions(settings, engine)  # nothing pending: nothing changes
    assert again.applied == 0 and DatasetStore(settings).load().revision == catalog.revision


def test_bad_decisions_are_refused_and_nothing_is_written(
    settings: Settings, engine: Engine
) -> None:
    with session_factory(engine)() as session:
        item = review_queue(settings, session).items[0]
        cases = [
            (item.id, "relabel", "", "review.bad_label"),
            (item.id, "relabel", "x" * 101, "review.bad_label"),
            (item.id, "relabel", "s1", "review.same_label"),
            (item.id, "label", "s2", "review.bad_action"),
            (item.id, "burn", None, "review.bad_action"),
        ]
        for item_id, action, label, code in cases:
            with pytest.raises(ReviewError) as refused:
                decide(settings, session, item_id, action, "alice", label=label)
            assert refused.value.code == code and refused.value.status == 422
        for unknown in ("outlier:" + "0" * 64, "nonsense", "outlier:../etc"):
            with pytest.raises(NotFound) as missing:
                decide(settings, session, unknown, "keep", "alice")
            assert missing.value.code == "review.item_not_found"
        with pytest.raises(ReviewError) as unknown_kind:
            review_queue(settings, session, kind="nope")
        assert unknown_kind.value.code == "review.unknown_kind"
        assert session.scalars(select(ReviewDecision)).all() == []


def test_visitor_photos_are_labelled_or_erased(
    settings: Settings, engine: Engine, orl: Orl
) -> None:
    said = kept_photo(
        settings, engine, orl["s4"][8], best_label="s3", probability=0.7, feedback_label="s4"
    )
    kept_photo(settings, engine, orl["s4"][9], best_label="s1", probability=0.2)
    kept_photo(settings, engine, orl["s2"][9], best_label="s2", probability=0.3)  # over the cap
    with session_factory(engine)() as session:
        queue = review_queue(settings, session)
        visitors = [i for i in queue.items if i.prediction_id]
        assert (visitors[0].kind, visitors[0].prediction_id) == (VISITOR_FEEDBACK, said)
        low = [i for i in visitors if i.kind == LOW_CONFIDENCE]
        assert len(low) == 1  # review_low_confidence_max
        assert visitors[0].suggested_label == "s4" and visitors[0].label == "s3"
        low_item = low[0]
        with pytest.raises(ReviewError):
            decide(settings, session, low_item.id, "relabel", "alice", label="s4")
        labelled = decide(settings, session, low_item.id, "label", "alice", label="s4")
        erased = decide(settings, session, f"{VISITOR_FEEDBACK}:{said}", "not_a_face", "alice")
    unsure_id = str(low_item.prediction_id)
    report = apply_review_decisions(settings, engine)
    assert (report.labelled, report.erased) == (1, 1)
    records = {r.source: r for r in DatasetStore(settings).load().images.values()}
    assert records[f"visitor:{unsure_id}"].label == "s4"
    assert f"visitor:{said}" not in records
    with session_factory(engine)() as session:
        gone = session.get(PredictionRecord, said)
        assert gone is not None and gone.storage_key is None and gone.feedback_label is None
        assert session.get(ReviewDecision, erased.id).result == "the kept photo was erased"  # type: ignore[union-attr]
        assert session.get(ReviewDecision, labelled.id).result == "brought into the dataset"  # type: ignore[union-attr]
    assert not ObjectStore(settings).exists(f"consented/{said}.pgm")

    # The next retrain: the visitors' gathering drops a photo its owner never labelled, and
    # the admin's label puts it back.
    gathered = gather_visitor_photos(settings, engine)
    assert gathered.forgotten == 1
    apply_review_decisions(settings, engine)
    records = {r.source: r for r in DatasetStore(settings).load().images.values()}
    assert records[f"visitor:{unsure_id}"].label == "s4"


def test_a_decision_that_would_leave_a_class_too_small_waits(
    settings: Settings, engine: Engine
) -> None:
    with session_factory(engine)() as session:
        item = review_queue(settings, session).items[0]
        lonely = decide(settings, session, item.id, "relabel", "alice", label="Newcomer")
    report = apply_review_decisions(settings, engine)
    assert report.applied == 0 and "'Newcomer'" in report.waiting[lonely.id]
    assert "Newcomer" not in DatasetStore(settings).load().counts()
    with session_factory(engine)() as session:
        assert undo(session, lonely.id, "alice").undone_at is not None  # still undoable
