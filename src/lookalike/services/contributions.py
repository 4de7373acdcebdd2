"""Joining the gallery, as the web service asks it: take a contribution (only with consent),
say how it is going, delete every copy with its token. The processing itself is
``lookalike.contributions.process``, run by the job queue."""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from lookalike.config import Settings
from lookalike.contributions import ENROLLED, crop_key, delete_contribution, object_prefix
from lookalike.data.store import CONTRIBUTION
from lookalike.db import Contribution, utcnow
from lookalike.errors import InvalidInput, LookalikeError, NotFound
from lookalike.registry import Registry
from lookalike.retention import forget_trained_on
from lookalike.services.predictions import Photo, by_hex_id, token_hash, token_matches
from lookalike.storage import ObjectStore
from lookalike.vision.video import InvalidVideo

Media = Literal["video", "photos"]
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class NewContribution:
    row: Contribution
    deletion_token: str  # shown once; only its SHA-256 is kept


def clean_display_name(value: str | None) -> str:
    """The name shown to others: 1-64 printable characters, spaces folded."""
    text = " ".join((value or "").split())
    if not text or len(text) > 64:
        raise InvalidInput(
            f"A display name of 1 to 64 characters is needed; got {len(text)} characters.",
            code="contribution.display_name",
            status=422,
            details={"length": len(text), "max_length": 64},
        )
    if any(unicodedata.category(c).startswith("C") for c in text):
        raise InvalidInput(
            "The display name may not contain control characters.",
            code="contribution.display_name",
            status=422,
        )
    return text


def _video_extension(data: bytes) -> str:
    """``mp4`` (also MOV) or ``webm`` from the container's first bytes; the decoder checks
    the rest."""
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"\x1aE\xdf\xa3":
        return "webm"
    raise InvalidVideo(
        "Expected a video (MP4, WebM or MOV); the file is not one. Record again, or upload"
        " the video file itself.",
        code="video.unreadable",
    )


def create_contribution(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    *,
    display_name: str | None,
    consent: bool,
    video: Photo | None,
    photos: list[Photo],
) -> NewContribution:
    """Store a contribution's video (or photos) and queue it. Nothing is stored without
    ``consent``; the caller queues ``lookalike.contributions.process`` for the row."""
    if not consent:
        raise InvalidInput(
            "Joining the gallery needs your consent: tick the box that says what is kept,"
            " for how long, and how to delete it.",
            code="contribution.consent_required",
            status=422,
        )
    name = clean_display_name(display_name)
    if (video is None) == (not photos):
        raise InvalidInput(
            "Send either one video (field 'video') or photos (field 'photo'), not both and"
            " not neither.",
            code="contribution.media",
            status=422,
        )
    contribution_id = uuid.uuid4().hex
    prefix = object_prefix(contribution_id)
    media: Media
    if video is not None:
        if len(video.data) > settings.video_max_bytes:
            raise LookalikeError(
                f"The video is {len(video.data)} bytes; at most {settings.video_max_bytes}"
                " are accepted. Record a shorter video (a few seconds: up to 10).",
                code="video.too_large",
                status=413,
                details={"size": len(video.data), "max_bytes": settings.video_max_bytes},
            )
        items = [(f"{prefix}source.{_video_extension(video.data)}", video.data)]
        media = "video"
    else:
        low, high = settings.contribution_min_photos, settings.contribution_max_photos
        if not low <= len(photos) <= high:
            raise InvalidInput(
                f"Send {low} to {high} photos of your face; got {len(photos)}.",
                code="contribution.photo_count",
                status=422,
                details={"photos": len(photos), "min": low, "max": high},
            )
        items = [(f"{prefix}photo-{i:02d}", p.data) for i, p in enumerate(photos)]
        media = "photos"
    token = secrets.token_urlsafe(24)
    row = Contribution(
        id=contribution_id,
        created_at=utcnow(),
        updated_at=utcnow(),
        display_name=name,
        media=media,
        sources=[key for key, _ in items],
        status="queued",
        progress=0.0,
        crops=0,
        approved=not settings.contributions_need_approval,
        deletion_token_hash=token_hash(token),
    )
    try:
        for key, data in items:
            store.put(key, data, "application/octet-stream")
        with sessions() as session, session.begin():
            session.add(row)
    except BaseException:  # no half-written contribution: the files go with the row
        for key, _ in items:
            store.delete(key)
        raise
    return NewContribution(row, token)


def get_contribution(session: Session, contribution_id: str) -> Contribution:
    return by_hex_id(
        session,
        Contribution,
        contribution_id,
        NotFound(
            "No contribution with that id (it may have been deleted).",
            code="contribution.not_found",
            details={"id": contribution_id[:64]},
        ),
    )


def delete_with_token(
    registry: Registry, store: ObjectStore, contribution_id: str, token: str | None
) -> bool:
    """Delete every copy of a contribution, given its deletion token (see ``delete``)."""
    with registry.sessions() as session:
        row = get_contribution(session, contribution_id)
        if not token_matches(token, row.deletion_token_hash):
            raise LookalikeError(
                "That deletion code does not match this contribution: copy the whole code"
                " you were shown when you joined.",
                code="contribution.bad_token",
                status=403,
                details={"send": "the token as ?token= or the X-Deletion-Token header"},
            )
    return delete(registry, store, contribution_id, "a contributor's deletion")


def delete(registry: Registry, store: ObjectStore, contribution_id: str, actor: str) -> bool:
    """Every copy of a contribution: its files and row (embeddings included), its crops in
    the training set (blobs, cached embeddings, splits); the model versions trained on it
    are marked and never serve again. Returns whether the champion is one of them: the
    caller queues the retrain that replaces it (``models.retrain_after_deletion``)."""
    with registry.sessions() as session, session.begin():
        delete_contribution(session, store, get_contribution(session, contribution_id))
    return forget_trained_on(registry, {CONTRIBUTION + contribution_id}, actor)


def shown_face(
    sessions: sessionmaker[Session], store: ObjectStore, contribution_id: str, number: int
) -> bytes:
    """A face crop of an enrolled contributor others may be shown (approved): their
    reference photo when a photo is answered "this is <them>"."""
    missing = NotFound(
        "No such face: the contributor is not enrolled (or was deleted), or has fewer crops.",
        code="contribution.face_not_found",
        details={"id": contribution_id[:64], "number": number},
    )
    with sessions() as session:
        row = get_contribution(session, contribution_id)
        if row.status != ENROLLED or not row.approved or not 0 <= number < row.crops:
            raise missing
    try:
        return store.get(crop_key(row.id, number))
    except NotFound:
        raise missing from None
