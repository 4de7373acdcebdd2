"""``/api/uploads``: signed, single-use upload URLs for a photo (``lookalike.services.uploads``):
to this server (``PUT /api/uploads/{key}``) or, on S3, a presigned URL straight to the bucket;
then ``POST /api/predictions {"upload_key": ...}``."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from lookalike.api.deps import StateDep, rate_limit
from lookalike.api.forms import media_type
from lookalike.api.schemas import UploadCreate, UploadPublic, UploadReceived
from lookalike.errors import NotFound
from lookalike.services import uploads
from lookalike.services.uploads import UPLOAD_TYPES, refused

router = APIRouter(prefix="/api/uploads", tags=["uploads"], dependencies=[Depends(rate_limit)])

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EXPIRES = re.compile(r"\d{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


@router.post(
    "", status_code=201, response_model=UploadPublic, summary="Get a signed URL to upload one photo"
)
def create_upload(state: StateDep, body: UploadCreate) -> UploadPublic:
    made = uploads.new_upload(
        state.sessions, state.store, state.settings, body.content_type, body.size
    )
    return UploadPublic(
        key=made.row.key,
        url=made.url,
        headers=made.headers,
        content_type=made.row.content_type,
        expires_at=made.row.expires_at,
        max_bytes=made.row.max_bytes,
    )


@router.put(
    "/{key}",
    response_model=UploadReceived,
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
    request: Request,
    state: StateDep,
    key: str,
    expires: str | None = None,
    signature: str | None = None,
) -> UploadReceived:
    if not expires or not signature:
        raise refused(
            "This upload URL is not signed: use the url returned by POST /api/uploads"
            " (with its expires and signature).",
            "upload.unsigned",
            403,
        )
    if not _KEY.fullmatch(key):
        raise NotFound("No upload with that key.", code="upload.not_found")
    if not _EXPIRES.fullmatch(expires) or not _SIGNATURE.fullmatch(signature):
        raise refused(
            "The upload URL's signature does not match; use the URL exactly as it was given.",
            "upload.bad_signature",
            403,
        )
    row = await run_in_threadpool(
        uploads.check_upload, state.sessions, state.settings, key, expires, signature
    )
    sent_type = media_type(request)
    if sent_type != row.content_type:
        raise refused(
            f"This URL was signed for {row.content_type}; the request says"
            f" {sent_type or 'nothing'}. Send the Content-Type you asked for.",
            "upload.wrong_content_type",
            415,
            expected=row.content_type,
            got=sent_type,
        )
    too_big = refused(
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
        raise refused("The upload is empty: send the photo's bytes.", "upload.empty", 400)
    received_at = await run_in_threadpool(
        uploads.receive_upload, state.sessions, state.store, row, bytes(data)
    )
    return UploadReceived(key=row.key, size=len(data), received_at=received_at)
