"""Contributors become classes: before each retrain, the face crops of everyone who joined
the gallery (enrolled, and approved when approval is needed) are imported as a class of
their own (source ``contribution:<id>``), and those deleted since leave the dataset.

Until that retrain, ``contributions.EnrolledGallery`` matches them; after it, the model
knows them like any class, so other visitors can get them as a lookalike too (with the
resemblance answer and their crop as the reference photo: they consented to being found).
Their crops always train (``data/personal.py``): the frozen test set stays the operator's.
The class is named after the display name; a name already taken (an operator's class or
an earlier contributor) gets a number, "Ada (2)", and keeps it at later retrains.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lookalike.config import Settings
from lookalike.contributions import ENROLLED, object_prefix
from lookalike.data.importers import SourceItem, import_items
from lookalike.data.personal import GatherReport, forget_sources
from lookalike.data.store import CONTRIBUTION, DatasetStore, is_contribution
from lookalike.db import Contribution
from lookalike.storage import ObjectStore


def source_of(contribution_id: str) -> str:
    return CONTRIBUTION + contribution_id


def free_label(name: str, taken: set[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... when a class already has it."""
    label, n = name, 1
    while label in taken:
        n += 1
        label = f"{name} ({n})"
    return label


def gather_contributors(settings: Settings, engine: Engine) -> GatherReport:
    """Bring enrolled contributors' crops into the dataset; drop deleted contributors."""
    report = GatherReport()
    catalog = DatasetStore(settings).load()
    present = {r.source for r in catalog.images.values() if is_contribution(r.source)}
    taken = set(catalog.counts())
    with Session(engine) as session:
        rows = session.execute(
            select(Contribution.id, Contribution.display_name, Contribution.crops)
            .where(Contribution.status == ENROLLED, Contribution.approved.is_(True))
            .order_by(Contribution.created_at, Contribution.id)
        ).all()
    objects = ObjectStore(settings)
    live: set[str] = set()
    items: list[SourceItem] = []
    for contribution_id, name, crops in rows:
        source = source_of(contribution_id)
        if crops < settings.min_images_per_class:
            continue  # too few to learn: matched by the enrolled gallery only
        live.add(source)
        if source in present:
            continue
        label = free_label(name, taken)
        taken.add(label)
        keys = [k for k in objects.iter_keys(object_prefix(contribution_id)) if "/face-" in k]
        items += [SourceItem(source, label, partial(objects.get, key)) for key in keys]
    gone = present - live  # deleted, expired or no longer approved
    report.forgotten = len(forget_sources(settings, gone))
    if items:
        imported = import_items(list(items), settings)
        report.added = imported.added
        report.problems = imported.problems
    return report


def forget_contribution(settings: Settings, contribution_id: str) -> int:
    """Remove a contributor's crops from the dataset (blobs, embeddings, splits)."""
    return len(forget_sources(settings, {source_of(contribution_id)}))
