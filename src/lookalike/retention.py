"""Erasing personal data: a kept prediction photo and what came with it, a contribution,
their copies in the training set, and the retention period after which contributions and
kept photos go by themselves (a daily job).

Deleting by hand (a token, an admin) and expiring run the same erase steps, so what expires
leaves exactly what a deletion leaves: the answer, nothing of the person. After the
database rows, ``forget_trained_on`` removes the dataset's copies and marks the model
versions trained on them, which never serve again; when the champion is one of them the
caller queues a retrain (``Trigger.DELETION``), whose challenger replaces it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lookalike.config import Settings
from lookalike.contributions import delete_contribution
from lookalike.data.personal import forget_sources
from lookalike.data.store import CONTRIBUTION, VISITOR
from lookalike.db import Contribution, PredictionRecord, utcnow
from lookalike.registry import Registry
from lookalike.storage import ObjectStore

log = logging.getLogger("lookalike.retention")


def erase_kept_photo(store: ObjectStore, row: PredictionRecord) -> None:
    """The photo and everything that came with it: its token's hash, the feedback (it
    labelled the photo for training), the consent. The answer itself stays. The caller
    commits, then calls ``forget_trained_on`` (the dataset's copy)."""
    if row.storage_key is not None:
        store.delete(row.storage_key)
    row.storage_key = row.deletion_token_hash = None
    row.feedback = row.feedback_label = row.feedback_at = None
    row.consent = False


def forget_trained_on(registry: Registry, sources: set[str], actor: str) -> bool:
    """The dataset's copies of deleted personal ``sources`` (``visitor:<id>``,
    ``contribution:<id>``) go; the versions trained on them are marked. Returns whether the
    champion is one of them (then queue a retrain)."""
    forget_sources(registry.settings, sources)
    return registry.champion() in registry.mark_trained_on(sources, actor)


@dataclass(frozen=True)
class Expired:
    contributions: int
    photos: int
    champion_trained_on: bool  # a retrain should replace the champion


def expire(settings: Settings, engine: Engine) -> Expired:
    """Delete contributions and kept photos older than ``retention_days`` (0: never)."""
    if settings.retention_days <= 0:
        return Expired(0, 0, False)
    cutoff = utcnow() - timedelta(days=settings.retention_days)
    store = ObjectStore(settings)
    with Session(engine) as session, session.begin():
        old = session.scalars(select(Contribution).where(Contribution.created_at < cutoff)).all()
        people = [CONTRIBUTION + c.id for c in old]
        for contribution in old:
            delete_contribution(session, store, contribution)
        photos = session.scalars(
            select(PredictionRecord).where(
                PredictionRecord.created_at < cutoff,
                PredictionRecord.storage_key.is_not(None) | PredictionRecord.consent.is_(True),
            )
        ).all()
        ids = [row.id for row in photos]
        for row in photos:
            erase_kept_photo(store, row)
    retrain = False
    if people or ids:
        with Registry(settings, engine) as registry:
            sources = {*people, *(VISITOR + i for i in ids)}
            retrain = forget_trained_on(registry, sources, "retention")
        log.info("retention: %d contribution(s) and %d kept photo(s) expired", len(old), len(ids))
    return Expired(len(old), len(ids), retrain)
