"""Erasing personal data: a kept prediction photo and what came with it, and the retention
period after which contributions and kept photos go by themselves (a daily job).

Deleting by hand (a visitor's token) and expiring run the same erase steps, so a photo that
expires leaves exactly what a deleted one leaves: the answer, nothing of the person."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lookalike.config import Settings
from lookalike.contributions import delete_contribution
from lookalike.data.visitors import forget_visitor_photo
from lookalike.db import Contribution, PredictionRecord, utcnow
from lookalike.storage import ObjectStore

log = logging.getLogger("lookalike.retention")


def erase_kept_photo(store: ObjectStore, row: PredictionRecord) -> None:
    """The photo and everything that came with it: its token's hash, the feedback (it
    labelled the photo for training), the consent. The answer itself stays. The caller
    commits, then calls ``forget_visitor_photo`` (the dataset's copy)."""
    if row.storage_key is not None:
        store.delete(row.storage_key)
    row.storage_key = row.deletion_token_hash = None
    row.feedback = row.feedback_label = row.feedback_at = None
    row.consent = False


@dataclass(frozen=True)
class Expired:
    contributions: int
    photos: int


def expire(settings: Settings, engine: Engine) -> Expired:
    """Delete contributions and kept photos older than ``retention_days`` (0: never)."""
    if settings.retention_days <= 0:
        return Expired(0, 0)
    cutoff = utcnow() - timedelta(days=settings.retention_days)
    store = ObjectStore(settings)
    with Session(engine) as session, session.begin():
        old = session.scalars(select(Contribution).where(Contribution.created_at < cutoff)).all()
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
    for prediction_id in ids:
        forget_visitor_photo(settings, prediction_id)
    if old or ids:
        log.info("retention: %d contribution(s) and %d kept photo(s) expired", len(old), len(ids))
    return Expired(len(old), len(ids))
