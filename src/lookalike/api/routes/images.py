"""``GET /api/images/{sha256}``: a reference photo of the CURRENT model's gallery.

Only hashes in the model's gallery are served (never a path, never an uploaded photo), with
a fixed image content type, ``nosniff`` and a CSP that forbids everything. Formats browsers do
not show (PGM/PPM, as in ORL) are converted to PNG on the fly.
"""

from __future__ import annotations

import io
import re

from fastapi import APIRouter, Request
from fastapi.responses import Response
from PIL import Image

from lookalike.api.deps import GalleryDep, SettingsDep
from lookalike.data.store import DatasetStore
from lookalike.errors import NotFound

router = APIRouter(prefix="/api/images", tags=["images"])

_SHA256 = re.compile(r"[0-9a-f]{64}")
_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
}
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "public, max-age=86400",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _not_found(sha256: str) -> NotFound:
    return NotFound(
        "No reference photo with that id in the current model.",
        code="image.not_found",
        details={"id": sha256[:64]},
    )


def _to_png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data), formats=["PPM"]) as im:
        im.load()
        buf = io.BytesIO()
        (im if im.mode in ("L", "RGB", "1") else im.convert("RGB")).save(buf, "PNG")
    return buf.getvalue()


@router.get(
    "/{sha256}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in sorted(set(_TYPES.values()))}}},
    summary="A reference photo of the current model",
)
def get_image(
    sha256: str,
    request: Request,
    gallery: GalleryDep,
    settings: SettingsDep,
) -> Response:
    if not _SHA256.fullmatch(sha256) or sha256 not in gallery.ext_by_hash:
        raise _not_found(sha256)
    etag = f'"{sha256}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={**_HEADERS, "ETag": etag})
    ext = gallery.ext_by_hash[sha256].lower()
    path = DatasetStore(settings).blob_path(sha256, ext)
    try:
        data = path.read_bytes()
    except OSError:
        raise _not_found(sha256) from None
    media_type = _TYPES.get(ext)
    if media_type is None:  # PGM/PPM/PBM: browsers cannot show them
        try:
            data, media_type = _to_png(data), "image/png"
        except Exception:
            raise _not_found(sha256) from None
    return Response(data, media_type=media_type, headers={**_HEADERS, "ETag": etag})
