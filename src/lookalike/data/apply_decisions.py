"""Applying the admins' review decisions to the dataset, at each retrain (right after the
visitors' photos are gathered): see ``lookalike.data.decisions`` for the queue and what each
action means.

Order of the steps, so that nothing is ever half-applied: the pending decisions are claimed
in one transaction (no undo from then on); the dataset photos' changes are one catalog write
under its lock, followed by their blobs, cached embeddings and split entries; visitors' kept
photos are erased or imported; last, each decision's result is recorded. A run killed in
between leaves claimed rows without a result, and the next run applies them again (every
step is idempotent: a relabel to the same class, a removal of a missing record, an import
of a photo already present do nothing).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from lookalike.config import Settings
from lookalike.data.cache import embedding_cache
from lookalike.data.decisions import REMOVING, target_of
from lookalike.data.importers import FileProblem, SourceItem, import_items
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore, ImageRecord
from lookalike.data.visitors import PREFIX as VISITOR_PREFIX
from lookalike.data.visitors import forget_visitor_photo
from lookalike.db.models import PredictionRecord, ReviewDecision, utcnow
from lookalike.fsutil import file_lock
from lookalike.storage import ObjectStore

log = logging.getLogger("lookalike.review")


@dataclass
class ApplyReport:
    applied: int = 0
    relabelled: int = 0
    removed: int = 0  # dataset records removed
    erased: int = 0  # visitors' kept photos erased
    labelled: int = 0  # visitors' photos brought in (or restored) with an admin's label
    revision: int | None = None  # the catalog's revision afterwards
    waiting: dict[int, str] = field(default_factory=dict)  # decision id -> why it waits
    problems: list[str] = field(default_factory=list)


def _effects(
    rows: list[ReviewDecision], records: dict[str, ImageRecord]
) -> dict[int, tuple[str | None, str | None]]:
    """Each decision's effect on class sizes: (class losing a photo, class gaining one)."""
    current = {sha: r.label for sha, r in records.items()}  # by target: sha256 or prediction id
    current.update(
        {
            r.source.removeprefix(VISITOR_PREFIX): r.label
            for r in records.values()
            if r.source.startswith(VISITOR_PREFIX)
        }
    )
    out: dict[int, tuple[str | None, str | None]] = {}
    for row in rows:
        key = target_of(row)
        before = current.get(key)
        if row.action in REMOVING:
            out[row.id] = (before, None)
            current.pop(key, None)
        elif row.action in ("relabel", "label") and row.label_after != before:
            out[row.id] = (before, row.label_after)
            current[key] = str(row.label_after)
    return out


def _hold_back(
    settings: Settings, rows: list[ReviewDecision], records: dict[str, ImageRecord]
) -> dict[int, str]:
    """Decisions that would leave a class with photos but too few to train (a retrain
    refuses such a dataset): they wait, still undoable, for more decisions or photos."""
    least = settings.min_images_per_class
    waiting: dict[int, str] = {}
    while True:
        effects = _effects([r for r in rows if r.id not in waiting], records)
        counts = Counter(r.label for r in records.values())
        for lost, gained in effects.values():
            if lost:
                counts[lost] -= 1
            if gained:
                counts[gained] += 1
        held = {}
        for row_id, classes in effects.items():
            small = sorted(c for c in classes if c and 0 < counts[c] < least)
            if small:
                held[row_id] = f"would leave class {small[0]!r} with fewer than {least} photos"
        if not held:
            return waiting
        waiting.update(held)  # fewer changes: count again


def apply_review_decisions(settings: Settings, engine: Engine) -> ApplyReport:
    """Apply the pending decisions to the dataset and mark them applied (no more undo)."""
    report = ApplyReport()
    store = DatasetStore(settings)
    with Session(engine) as session:
        pending = list(
            session.scalars(
                select(ReviewDecision)
                .where(ReviewDecision.undone_at.is_(None), ReviewDecision.result.is_(None))
                .order_by(ReviewDecision.id)
            ).all()
        )
        session.expunge_all()
    waiting = _hold_back(settings, pending, store.load().images)
    # A row a killed run claimed can no longer be undone: it is always finished.
    claimed_before = {r.id for r in pending if r.applied_at is not None}
    report.waiting = {i: why for i, why in waiting.items() if i not in claimed_before}
    chosen = [r.id for r in pending if r.id not in report.waiting]
    with Session(engine) as session, session.begin():
        # The claim: from here on an undo is refused (a row a killed run claimed is retried).
        session.execute(
            update(ReviewDecision)
            .where(ReviewDecision.id.in_(chosen), ReviewDecision.undone_at.is_(None))
            .where(ReviewDecision.applied_at.is_(None))
            .values(applied_at=utcnow())
        )
    with Session(engine) as session:
        claimed = list(
            session.scalars(
                select(ReviewDecision)
                .where(ReviewDecision.id.in_(chosen), ReviewDecision.applied_at.is_not(None))
                .where(ReviewDecision.result.is_(None))
                .order_by(ReviewDecision.id)
            ).all()
        )
        standing = _standing_labels(session)
        session.expunge_all()
    results: dict[int, str] = {}
    erase: set[str] = set()  # prediction ids whose kept photo goes
    _apply_to_catalog(settings, [r for r in claimed if r.sha256], results, erase, report)
    labels: dict[str, tuple[int | None, str]] = {p: (None, lab) for p, lab in standing.items()}
    for row in claimed:
        if row.prediction_id is None:
            continue
        if row.action in REMOVING:
            erase.add(row.prediction_id)
            labels.pop(row.prediction_id, None)
            results[row.id] = "the kept photo was erased"
        elif row.action == "label":
            labels[row.prediction_id] = (row.id, str(row.label_after))
        else:
            results[row.id] = "kept as it was"
    _erase(settings, engine, erase, report)
    _label_visitor_photos(settings, engine, labels, results, report)
    report.revision = store.load().revision
    with Session(engine) as session, session.begin():
        for row_id, text in results.items():
            session.execute(
                update(ReviewDecision)
                .where(ReviewDecision.id == row_id)
                .values(result=text[:2000], applied_revision=report.revision)
            )
    report.applied = len(results)
    if report.applied or report.waiting:
        log.info(
            "review decisions: %d applied, %d waiting (%s)",
            report.applied,
            len(report.waiting),
            "; ".join(sorted(set(report.waiting.values()))) or "none",
        )
    return report


def _standing_labels(session: Session) -> dict[str, str]:
    """Visitors' photos an admin labelled in an earlier retrain (the newest label wins)."""
    rows = session.scalars(
        select(ReviewDecision)
        .where(
            ReviewDecision.prediction_id.is_not(None),
            ReviewDecision.undone_at.is_(None),
            ReviewDecision.result.is_not(None),
        )
        .order_by(ReviewDecision.id)
    ).all()
    out: dict[str, str] = {}
    for row in rows:
        if row.action == "label":
            out[str(row.prediction_id)] = str(row.label_after)
        elif row.action in REMOVING:
            out.pop(str(row.prediction_id), None)
    return out


def _apply_to_catalog(
    settings: Settings,
    rows: list[ReviewDecision],
    results: dict[int, str],
    erase: set[str],
    report: ApplyReport,
) -> None:
    """Dataset photos' decisions: one catalog write, then blobs, embeddings and splits."""
    if not rows:
        return
    store = DatasetStore(settings)
    removed: list[ImageRecord] = []
    with file_lock(store.lock_path):
        catalog = store.load()
        changed = False
        for row in rows:
            record = catalog.images.get(str(row.sha256))
            if record is None:
                results[row.id] = "the photo was no longer in the dataset"
            elif row.action == "keep":
                results[row.id] = f"kept as {record.label!r}"
            elif row.action == "relabel":
                before, record.label = record.label, str(row.label_after)
                results[row.id] = f"relabelled from {before!r} to {record.label!r}"
                report.relabelled += 1
                changed = True
            else:
                del catalog.images[record.sha256]
                removed.append(record)
                if record.source.startswith(VISITOR_PREFIX):
                    erase.add(record.source.removeprefix(VISITOR_PREFIX))
                results[row.id] = "removed from the dataset"
                changed = True
        if changed:
            store.save(catalog)
    cache = embedding_cache(settings.data_dir)
    for record in removed:
        store.remove_blob(record)
        cache.delete(record.sha256)
    SplitStore(settings).forget({r.sha256 for r in removed})
    report.removed += len(removed)


def _erase(settings: Settings, engine: Engine, ids: set[str], report: ApplyReport) -> None:
    """Visitors' kept photos an admin deleted: erased as their owners' deletion would."""
    from lookalike.retention import erase_kept_photo  # retention reaches the contributions

    if not ids:
        return
    objects = ObjectStore(settings)
    with Session(engine) as session, session.begin():
        for row in session.scalars(
            select(PredictionRecord).where(PredictionRecord.id.in_(sorted(ids)))
        ).all():
            if row.storage_key is not None:
                report.erased += 1
            erase_kept_photo(objects, row)
    for prediction_id in sorted(ids):
        forget_visitor_photo(settings, prediction_id)


def _label_visitor_photos(
    settings: Settings,
    engine: Engine,
    labels: dict[str, tuple[int | None, str]],
    results: dict[int, str],
    report: ApplyReport,
) -> None:
    """Bring visitors' photos in under the admins' labels (or put the label back)."""
    if not labels:
        return
    store = DatasetStore(settings)
    objects = ObjectStore(settings)
    with Session(engine) as session:
        rows = session.execute(
            select(PredictionRecord.id, PredictionRecord.storage_key).where(
                PredictionRecord.id.in_(sorted(labels))
            )
        ).all()
        keys = {prediction_id: key for prediction_id, key in rows}
    items: list[SourceItem | FileProblem] = []
    new: dict[str, int | None] = {}
    with file_lock(store.lock_path):
        catalog = store.load()
        present = {r.source: r for r in catalog.images.values()}
        changed = False
        for prediction_id, (row_id, label) in sorted(labels.items()):
            key = keys.get(prediction_id)
            source = VISITOR_PREFIX + prediction_id
            if key is None:  # the visitor deleted it meanwhile
                if row_id is not None:
                    results[row_id] = "the visitor deleted the photo meanwhile"
                continue
            record = present.get(source)
            if record is not None:
                if record.label != label:
                    record.label = label
                    changed = True
                if row_id is not None:
                    results[row_id] = f"labelled {label!r}"
                    report.labelled += 1
                continue
            items.append(SourceItem(source, label, partial(objects.get, key)))
            new[source] = row_id
        if changed:
            store.save(catalog)
    if not items:
        return
    imported = import_items(items, settings)  # takes the catalog lock itself
    failed = {p.source: p.message for p in imported.problems if p.severity == "error"}
    for source, row_id in new.items():
        if source in failed:
            report.problems.append(f"{source}: {failed[source]}")
            if row_id is not None:
                results[row_id] = f"not imported: {failed[source]}"
        elif row_id is not None:
            results[row_id] = "brought into the dataset"
            report.labelled += 1
