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
replaced by that model (``training/compare.py``). See ``data/personal.py``.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from lookalike.config import Settings
from lookalike.data.importers import FileProblem, SourceItem, import_items
from lookalike.data.personal import GatherReport, forget_sources
from lookalike.data.store import VISITOR as PREFIX
from lookalike.data.store import DatasetStore, is_visitor
from lookalike.db import PredictionRecord
from lookalike.storage import ObjectStore


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
    """Remove a visitor's photo from the dataset, its blob, cached embeddings and split."""
    return len(forget_sources(settings, {PREFIX + prediction_id}))
