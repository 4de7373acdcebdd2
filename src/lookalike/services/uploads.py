"""Signed, single-use upload URLs for one photo each, then a prediction from the upload.

Two kinds of URL, one contract (PUT exactly the declared bytes with the given headers):

* local storage (and S3 with ``s3_presigned_uploads`` off): ``new_upload`` hands out
  ``/api/uploads/{key}?expires=...&signature=...``; the signature is HMAC-SHA256 (the
  settings' ``secret_key``) over ``"{key}:{expires}:{content_type}:{max_bytes}"``.
  ``check_upload`` refuses a PUT that is unsigned or tampered with (403), expired (410),
  already used (409); the edge refuses one larger than signed (413) or of another content
  type (415).
* S3: a presigned S3 PUT URL (``ObjectStore.presign_put``) whose signed Content-Type and
  Content-Length headers bind the type and the exact size; S3 itself refuses any other PUT.
  This server never sees that PUT, so ``claim_upload`` checks the object before using it.

``claim_upload`` hands an upload's bytes to one prediction, once. Uploads never used are
deleted after ``upload_ttl_seconds`` (``sweep_uploads``, at start-up and on every new upload).
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
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the longest S3 signs a URL for


@dataclass(frozen=True)
class NewUpload:
    row: Upload
    url: str  # signed: PUT the bytes there
    headers: dict[str, str]  # to send with the PUT, exactly


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
    # Signed before the row is written: a URL that cannot be made leaves no row behind.
    url = upload_url(store, settings, row)
    with sessions() as session, session.begin():
        session.add(row)
    return NewUpload(row, url, {"Content-Type": content_type})


def upload_url(store: ObjectStore, settings: Settings, row: Upload) -> str:
    """Where to PUT the photo: straight to S3 when the store presigns, else to this server."""
    if store.presigns_uploads:
        seconds = min(settings.upload_ttl_seconds, MAX_PRESIGN_SECONDS)
        return store.presign_put(object_key(row.key), row.content_type, row.max_bytes, seconds)
    expires = str(int(row.expires_at.timestamp()))
    signature = sign(settings.secret_key, row.key, expires, row.content_type, row.max_bytes)
    return f"/api/uploads/{row.key}?expires={expires}&signature={signature}"


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


# --- claiming an upload for a prediction -----------------------------------------------------


def _used() -> LookalikeError:
    return refused(
        "This upload was already used for a prediction; upload the photo again.",
        "upload.used",
        409,
    )


def _not_received() -> LookalikeError:
    return refused(
        "Nothing was uploaded with that key yet: PUT the photo to the upload URL first.",
        "upload.not_received",
        409,
    )


def _claimable(sessions: sessionmaker[Session], store: ObjectStore, key: str) -> Upload:
    """The upload ``key`` names, if it may be claimed now (its object not yet checked)."""
    with sessions() as session:
        row = session.get(Upload, key)
    if row is None:
        raise NotFound(
            "No upload with that key. Ask for a new upload URL (POST /api/uploads).",
            code="upload.not_found",
        )
    if row.consumed_at is not None:
        raise _used()
    if row.received_at is None and not store.presigns_uploads:
        raise _not_received()
    if row.expires_at <= utcnow():
        raise refused("This upload has expired; ask for a new upload URL.", "upload.expired", 410)
    return row


def _object_problem(row: Upload, size: int, content_type: str | None) -> LookalikeError | None:
    """Why an object PUT straight to S3 is not the photo that was signed for, if it is not
    (S3 enforces the signed headers; this holds against a server that does not)."""
    if size > row.max_bytes:
        return refused(
            f"The upload is {size} bytes; {row.max_bytes} were signed for. Upload it again.",
            "upload.too_large",
            413,
            size=size,
            max_bytes=row.max_bytes,
        )
    if size != row.max_bytes:
        return refused(
            f"The upload is {size} bytes, not the {row.max_bytes} declared: it was cut short."
            " Upload it again.",
            "upload.wrong_size",
            422,
            size=size,
            expected=row.max_bytes,
        )
    sent = (content_type or "").split(";")[0].strip().lower()
    if sent != row.content_type:
        return refused(
            f"The upload was stored as {sent or 'nothing'}; it was signed for"
            f" {row.content_type}. Send the Content-Type you asked for.",
            "upload.wrong_content_type",
            415,
            expected=row.content_type,
            got=sent,
        )
    return None


def _check_direct_upload(store: ObjectStore, row: Upload) -> int:
    """The size of an upload PUT straight to S3, once its object is checked; a wrong object
    is deleted (the URL may still receive the right one before it expires)."""
    stored = object_key(row.key)
    try:
        found = store.info(stored)
    except NotFound:
        raise _not_received() from None
    problem = _object_problem(row, found.size, found.content_type)
    if problem is not None:
        store.delete(stored)
        raise problem
    return found.size


def claim_upload(sessions: sessionmaker[Session], store: ObjectStore, key: str) -> bytes:
    """Claim a received upload for one prediction (once) and take its bytes out of the store
    (deleted: one prediction per upload, nothing kept without consent)."""
    row = _claimable(sessions, store, key)
    direct = row.received_at is None  # PUT straight to S3: this server has not seen it
    size = _check_direct_upload(store, row) if direct else row.size
    now = utcnow()
    with sessions() as session, session.begin():
        claimed = session.execute(
            update(Upload)
            .where(Upload.key == key, Upload.consumed_at.is_(None))
            .values(consumed_at=now, received_at=row.received_at or now, size=size)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 1) != 1:
            raise _used()
    stored = object_key(key)
    try:
        data = store.get(stored)
    except NotFound:
        raise refused(
            "The uploaded photo is gone (it expired); upload it again.", "upload.expired", 410
        ) from None
    finally:
        store.delete(stored)
    if direct and len(data) != row.max_bytes:  # replaced between the check and the read
        raise _object_problem(row, len(data), row.content_type) or _used()
    return data
