"""``/api/uploads``: signed, single-use upload URLs for a photo, then
``POST /api/predictions {"upload_key": ...}``.

``POST /api/uploads {"content_type", "size"}`` hands out
``/api/uploads/{key}?expires=...&signature=...``; the signature is HMAC-SHA256 (the
settings' ``secret_key``) over ``"{key}:{expires}:{content_type}:{max_bytes}"``. The PUT is
refused when unsigned or tampered with (403), expired (410), already used (409), larger than
signed (413) or of another content type (415). Uploads never used are deleted after
``upload_ttl_seconds`` (swept at start-up and on every ``POST /api/uploads``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from lookalike.api.errors import ApiError
from lookalike.api.limits import rate_limit
from lookalike.api.schemas import UploadCreate, UploadPublic, UploadReceived
from lookalike.config import Settings
from lookalike.db import Upload, utcnow
from lookalike.errors import NotFound
from lookalike.storage import ObjectStore

log = logging.getLogger("lookalike.api")

router = APIRouter(prefix="/api/uploads", tags=["uploads"])

UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EXPIRES = re.compile(r"\d{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def sign(secret: str, key: str, expires: str, content_type: str, max_bytes: int) -> str:
    message = f"{key}:{expires}:{content_type}:{max_bytes}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def object_key(key: str) -> str:
    return f"uploads/{key}"


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


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    dependencies=[Depends(rate_limit)],
    summary="Get a signed URL to upload one photo",
)
def create_upload(request: Request, body: UploadCreate) -> UploadPublic:
    settings: Settings = request.app.state.settings
    sessions: sessionmaker[Session] = request.app.state.sessions
    sweep_uploads(sessions, request.app.state.store, settings)
    content_type = body.content_type.strip().lower()
    if content_type not in UPLOAD_TYPES:
        raise ApiError(
            f"Expected a photo content type ({', '.join(UPLOAD_TYPES)}); got {content_type!r}.",
            code="upload.unsupported_type",
            status=415,
            details={"content_type": content_type, "supported": list(UPLOAD_TYPES)},
        )
    if body.size > settings.max_image_bytes:
        raise ApiError(
            f"The photo is {body.size} bytes; at most {settings.max_image_bytes} are accepted."
            " Resize or compress it.",
            code="upload.too_large",
            status=413,
            details={"size": body.size, "max_bytes": settings.max_image_bytes},
        )
    now = utcnow().replace(microsecond=0)
    row = Upload(
        key=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.upload_ttl_seconds),
        content_type=content_type,
        max_bytes=body.size,
    )
    with sessions() as session, session.begin():
        session.add(row)
    expires = str(int(row.expires_at.timestamp()))
    signature = sign(settings.secret_key, row.key, expires, content_type, row.max_bytes)
    return UploadPublic(
        key=row.key,
        url=f"/api/uploads/{row.key}?expires={expires}&signature={signature}",
        content_type=content_type,
        expires_at=row.expires_at,
        max_bytes=row.max_bytes,
    )


def _refuse(message: str, code: str, status: int, **details: Any) -> ApiError:
    return ApiError(message, code=code, status=status, details=details)


def _check(
    row: Upload | None, key: str, expires: str, signature: str, settings: Settings, now: datetime
) -> Upload:
    if row is None:
        raise NotFound(
            "No upload with that key (it may have expired). Ask for a new upload URL.",
            code="upload.not_found",
        )
    expected = sign(settings.secret_key, key, expires, row.content_type, row.max_bytes)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise _refuse(
            "The upload URL's signature does not match; use the URL exactly as it was given.",
            "upload.bad_signature",
            403,
        )
    if int(expires) <= int(now.timestamp()):
        raise _refuse("This upload URL has expired; ask for a new one.", "upload.expired", 410)
    if row.received_at is not None:
        raise _refuse("This upload URL was already used; ask for a new one.", "upload.used", 409)
    return row


def _content_type(request: Request) -> str:
    header = request.headers.get("content-type", "")
    if not header:
        return ""
    message = Message()
    message["content-type"] = header
    return message.get_content_type().lower()


def _store(
    sessions: sessionmaker[Session], store: ObjectStore, row: Upload, data: bytes
) -> UploadReceived:
    now = utcnow()
    with sessions() as session, session.begin():
        claimed = session.execute(
            update(Upload)
            .where(Upload.key == row.key, Upload.received_at.is_(None))
            .values(received_at=now, size=len(data))
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 1) != 1:
            raise _refuse(
                "This upload URL was already used; ask for a new one.", "upload.used", 409
            )
        # Inside the transaction: if storing fails, the upload is not marked received.
        store.put(object_key(row.key), data, row.content_type)
    return UploadReceived(key=row.key, size=len(data), received_at=now)


@router.put(
    "/{key}",
    response_model=UploadReceived,
    dependencies=[Depends(rate_limit)],
    summary="Upload the photo's bytes to a signed URL",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in UPLOAD_TYPES
            },
        }
    },
)
async def receive_upload(
    request: Request, key: str, expires: str | None = None, signature: str | None = None
) -> UploadReceived:
    settings: Settings = request.app.state.settings
    sessions: sessionmaker[Session] = request.app.state.sessions
    if not expires or not signature:
        raise _refuse(
            "This upload URL is not signed: use the url returned by POST /api/uploads"
            " (with its expires and signature).",
            "upload.unsigned",
            403,
        )
    if not _KEY.fullmatch(key):
        raise NotFound("No upload with that key.", code="upload.not_found")
    if not _EXPIRES.fullmatch(expires) or not _SIGNATURE.fullmatch(signature):
        raise _refuse(
            "The upload URL's signature does not match; use the URL exactly as it was given.",
            "upload.bad_signature",
            403,
        )

    def load() -> Upload | None:
        with sessions() as session:
            return session.get(Upload, key)

    row = _check(await run_in_threadpool(load), key, expires, signature, settings, utcnow())

    sent_type = _content_type(request)
    if sent_type != row.content_type:
        raise _refuse(
            f"This URL was signed for {row.content_type}; the request says"
            f" {sent_type or 'nothing'}. Send the Content-Type you asked for.",
            "upload.wrong_content_type",
            415,
            expected=row.content_type,
            got=sent_type,
        )
    too_big = _refuse(
        f"This URL accepts at most {row.max_bytes} bytes (the size you asked for).",
        "upload.too_large",
        413,
        max_bytes=row.max_bytes,
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > row.max_bytes:
        raise too_big
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > row.max_bytes:
            raise too_big
    if not data:
        raise _refuse("The upload is empty: send the photo's bytes.", "upload.empty", 400)
    return await run_in_threadpool(_store, sessions, request.app.state.store, row, bytes(data))
