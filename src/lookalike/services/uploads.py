"""Signed, single-use upload URLs for one photo each, then a prediction from the upload.

``new_upload`` hands out ``/api/uploads/{key}?expires=...&signature=...``; the signature is
HMAC-SHA256 (the settings' ``secret_key``) over ``"{key}:{expires}:{content_type}:{max_bytes}"``.
``check_upload`` refuses a PUT that is unsigned or tampered with (403), expired (410),
already used (409); the edge refuses one larger than signed (413) or of another content
type (415). Uploads never used are deleted after ``upload_ttl_seconds`` (``sweep_uploads``,
at start-up and on every new upload).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from lookalike.config import Settings
from lookalike.db import Upload, utcnow
from lookalike.errors import LookalikeError, NotFound
from lookalike.storage import ObjectStore

log = logging.getLogger("lookalike.services")

UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif")


@dataclass(frozen=True)
class NewUpload:
    row: Upload
    url: str  # signed: PUT the bytes there


def sign(secret: str, key: str, expires: str, content_type: str, max_bytes: int) -> str:
    message = f"{key}:{expires}:{content_type}:{max_bytes}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def object_key(key: str) -> str:
    return f"uploads/{key}"


def refused(message: str, code: str, status: int, **details: object) -> LookalikeError:
    return LookalikeError(message, code=code, status=status, details=details)


def sweep_uploads(sessions: sessionmaker[Session], store: ObjectStore, settings: Settings) -> int:
    """Delete uploads past their expiry (rows and bytes) and stray upload objects older than
    the TTL. Returns the number of objects removed."""
    now = utcnow()
    removed = 0
    with sessions() as session, session.begin():
        keys = session.scalars(select(Upload.key).where(Upload.expires_at <= now)).all()
        for key in keys:
            removed += store.delete(object_key(key))
        if keys:
            session.execute(
                delete(Upload)
                .where(Upload.key.in_(keys))
                .execution_options(synchronize_session=False)
            )
        live = set(session.scalars(select(Upload.key).where(Upload.expires_at > now)).all())
    cutoff = now - timedelta(seconds=settings.upload_ttl_seconds)
    for stored in list(store.iter_keys("uploads/")):
        key = stored.removeprefix("uploads/")
        if key in live:
            continue
        try:
            if store.mtime(stored) <= cutoff:
                removed += store.delete(stored)
        except NotFound:
            continue
    if removed:
        log.info("swept %d expired upload(s)", removed)
    return removed


def new_upload(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    settings: Settings,
    content_type: str,
    size: int,
) -> NewUpload:
    """A signed URL for one photo of ``content_type`` and at most ``size`` bytes."""
    sweep_uploads(sessions, store, settings)
    content_type = content_type.strip().lower()
    if content_type not in UPLOAD_TYPES:
        raise refused(
            f"Expected a photo content type ({', '.join(UPLOAD_TYPES)}); got {content_type!r}.",
            "upload.unsupported_type",
            415,
            content_type=content_type,
            supported=list(UPLOAD_TYPES),
        )
    if size > settings.max_image_bytes:
        raise refused(
            f"The photo is {size} bytes; at most {settings.max_image_bytes} are accepted."
            " Resize or compress it.",
            "upload.too_large",
            413,
            size=size,
            max_bytes=settings.max_image_bytes,
        )
    now = utcnow().replace(microsecond=0)
    row = Upload(
        key=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.upload_ttl_seconds),
        content_type=content_type,
        max_bytes=size,
    )
    with sessions() as session, session.begin():
        session.add(row)
    expires = str(int(row.expires_at.timestamp()))
    signature = sign(settings.secret_key, row.key, expires, content_type, row.max_bytes)
    return NewUpload(row, f"/api/uploads/{row.key}?expires={expires}&signature={signature}")


def check_upload(
    sessions: sessionmaker[Session], settings: Settings, key: str, expires: str, signature: str
) -> Upload:
    """The upload a signed URL names, if it may still receive its photo."""
    with sessions() as session:
        row = session.get(Upload, key)
    if row is None:
        raise NotFound(
            "No upload with that key (it may have expired). Ask for a new upload URL.",
            code="upload.not_found",
        )
    expected = sign(settings.secret_key, key, expires, row.content_type, row.max_bytes)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise refused(
            "The upload URL's signature does not match; use the URL exactly as it was given.",
            "upload.bad_signature",
            403,
        )
    if int(expires) <= int(utcnow().timestamp()):
        raise refused("This upload URL has expired; ask for a new one.", "upload.expired", 410)
    if row.received_at is not None:
        raise refused("This upload URL was already used; ask for a new one.", "upload.used", 409)
    return row


def receive_upload(
    sessions: sessionmaker[Session], store: ObjectStore, row: Upload, data: bytes
) -> datetime:
    """Store an upload's bytes (once); returns when they were received."""
    now = utcnow()
    with sessions() as session, session.begin():
        claimed = session.execute(
            update(Upload)
            .where(Upload.key == row.key, Upload.received_at.is_(None))
            .values(received_at=now, size=len(data))
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 1) != 1:
            raise refused(
                "This upload URL was already used; ask for a new one.", "upload.used", 409
            )
        # Inside the transaction: if storing fails, the upload is not marked received.
        store.put(object_key(row.key), data, row.content_type)
    return now
