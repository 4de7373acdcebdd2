"""Photos by hash, never by path:

* ``GET /api/images/{sha256}``: a reference photo of the CURRENT model's gallery, for anyone;
  only hashes in the model's gallery are served (never an uploaded or a test photo);
* ``GET /api/admin/dataset/images/{sha256}``: any photo of the dataset, for admins (the
  review queue and the evaluation views show test photos and flagged ones).

Both answer with a fixed image content type, ``nosniff`` and a CSP that forbids everything.
Formats browsers do not show (PGM/PPM, as in ORL) are converted to PNG on the fly. With a
remote object store, a photo the data dir lacks is read from the store's copy (published with
the model version that shows it), so every app machine serves the same reference photos.
"""

from __future__ import annotations

import io
import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from PIL import Image

from lookalike.api.auth import require_admin
from lookalike.api.deps import GalleryDep, SettingsDep
from lookalike.config import Settings
from lookalike.data.store import DatasetStore
from lookalike.errors import NotFound

router = APIRouter(prefix="/api/images", tags=["images"])
admin_router = APIRouter(
    prefix="/api/admin/dataset/images", tags=["admin"], dependencies=[Depends(require_admin)]
)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
}
IMAGE_HEADERS = {  # a photo, never anything a browser would run
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "public, max-age=86400",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _not_found(sha256: str, where: str = "the current model's reference photos") -> NotFound:
    return NotFound(
        f"No photo with that id in {where}.",
        code="image.not_found",
        details={"id": sha256[:64]},
    )


def _to_png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data), formats=["PPM"]) as im:
        im.load()
        buf = io.BytesIO()
        (im if im.mode in ("L", "RGB", "1") else im.convert("RGB")).save(buf, "PNG")
    return buf.getvalue()


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {t: {} for t in sorted(set(_TYPES.values()))}}
}


@router.get(
    "/{sha256}",
    response_class=Response,
    responses=_RESPONSES,
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
    return _serve(request, settings, sha256, gallery.ext_by_hash[sha256], _not_found(sha256))


@admin_router.get(
    "/{sha256}",
    response_class=Response,
    responses=_RESPONSES,
    summary="Any photo of the dataset (admin)",
)
def get_dataset_image(sha256: str, request: Request, settings: SettingsDep) -> Response:
    missing = _not_found(sha256, "the dataset")
    if not _SHA256.fullmatch(sha256):
        raise missing
    record = DatasetStore(settings).load().images.get(sha256)
    if record is None:
        raise missing
    return _serve(request, settings, sha256, record.ext, missing, cache="private, max-age=3600")


def _serve(
    request: Request,
    settings: Settings,
    sha256: str,
    ext: str,
    missing: NotFound,
    cache: str | None = None,
) -> Response:
    headers = {**IMAGE_HEADERS, "ETag": f'"{sha256}"'}
    if cache:
        headers["Cache-Control"] = cache
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    ext = ext.lower()
    try:  # the data dir's copy, else the object store's (a model trained on another machine)
        data = DatasetStore(settings).read_blob(sha256, ext)
    except (NotFound, OSError):
        raise missing from None
    media_type = _TYPES.get(ext)
    if media_type is None:  # PGM/PPM/PBM: browsers cannot show them
        try:
            data, media_type = _to_png(data), "image/png"
        except Exception:
            raise missing from None
    return Response(data, media_type=media_type, headers=headers)
