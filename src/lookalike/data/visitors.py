"""Visitor photos in the training set: only with consent and a confirmed label, and gone
again when the visitor deletes them.

A visitor who ticked "keep my photo to improve the model" and then confirmed the answer
(like) or named the class they look more like ("I look more like X") gives a labelled photo.
Before each retrain, :func:`gather_visitor_photos` imports those photos (source
``visitor:<prediction id>``) into existing classes only (a visitor never creates a class).
They always train: never in the frozen test set (it stays the operator's curated photos)
and never in a model's reference gallery (another visitor is never shown them as a "nearest
photo"). :func:`forget_visitor_photo` removes one again with its embeddings; the next
retrain trains without it, and a champion whose head was trained on a deleted photo is
replaced by that model unless it is significantly worse (``training/compare.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from lookalike.config import Settings
from lookalike.data.cache import embedding_cache
from lookalike.data.importers import FileProblem, SourceItem, import_items
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore
from lookalike.db import PredictionRecord
from lookalike.fsutil import file_lock
from lookalike.storage import ObjectStore

PREFIX = "visitor:"


def is_visitor(source: str) -> bool:
    return source.startswith(PREFIX)


@dataclass
class GatherReport:
    added: int = 0
    forgotten: int = 0  # deleted by their owners since the last gathering
    problems: list[FileProblem] = field(default_factory=list)


def confirmed_label(row: PredictionRecord) -> str | None:
    """The class a visitor confirmed for their photo, if any."""
    if row.feedback_label:
        return row.feedback_label
    if row.feedback == "like" and row.label:
        return row.label
    return None


def gather_visitor_photos(settings: Settings, engine: Engine) -> GatherReport:
    """Bring consented, confirmed visitor photos into the dataset; drop withdrawn ones."""
    report = GatherReport()
    store = DatasetStore(settings)
    catalog = store.load()
    classes = set(catalog.counts())
    present = {r.source for r in catalog.images.values() if is_visitor(r.source)}
    objects = ObjectStore(settings)
    items: list[SourceItem | FileProblem] = []
    kept: set[str] = set()
    with Session(engine) as session:
        rows = session.scalars(
            select(PredictionRecord).where(
                PredictionRecord.storage_key.is_not(None),
                or_(
                    PredictionRecord.feedback_label.is_not(None),
                    PredictionRecord.feedback == "like",
                ),
            )
        ).all()
    for row in rows:
        label = confirmed_label(row)
        source = PREFIX + row.id
        if label is None or label not in classes or row.storage_key is None:
            continue
        kept.add(source)
        if source in present:
            continue
        items.append(SourceItem(source, label, partial(objects.get, row.storage_key)))
    for source in sorted(present - kept):  # deleted, or the label was withdrawn
        report.forgotten += forget_visitor_photo(settings, source.removeprefix(PREFIX))
    if items:
        imported = import_items(items, settings)
        report.added = imported.added
        report.problems = imported.problems
    return report


def forget_visitor_photo(settings: Settings, prediction_id: str) -> int:
    """Remove a visitor's photo from the dataset, its blob and its cached embeddings."""
    store = DatasetStore(settings)
    cache = embedding_cache(settings.data_dir)
    source = PREFIX + prediction_id
    with file_lock(store.lock_path):
        catalog = store.load()
        gone = [r for r in catalog.images.values() if r.source == source]
        for record in gone:
            del catalog.images[record.sha256]
        if gone:
            store.save(catalog)
    for record in gone:
        store.path_of(record).unlink(missing_ok=True)
        cache.delete(record.sha256)
    SplitStore(settings).forget({r.sha256 for r in gone})  # not even its hash stays
    return len(gone)
