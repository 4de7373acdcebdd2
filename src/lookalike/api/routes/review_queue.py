"""The admins' review queue (``lookalike.data.decisions``; the page is ``/admin/review``):

* ``GET /api/admin/review``: the queue, grouped by kind and class, worst first, each item
  with its pending decision (filters: ``kind``, ``label``);
* ``POST /api/admin/review/decisions``: decide on an item (replaces its pending decision);
* ``POST /api/admin/review/decisions/{id}/undo``: withdraw a decision no retrain used yet;
* ``GET /api/admin/review/decisions``: the audit trail, newest first;
* ``GET /api/admin/review/photos/{prediction_id}``: a visitor's kept photo (consent only).

Admin only; the writes need the CSRF token with a session cookie.
"""

from __future__ import annotations

import io
import re
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from PIL import Image
from sqlalchemy import func, select

from lookalike.api.auth import AdminDep, require_admin, require_csrf
from lookalike.api.deps import SessionDep, SettingsDep, StateDep
from lookalike.api.schemas import (
    ErrorPublic,
    ReviewDecisionCreate,
    ReviewDecisionList,
    ReviewDecisionPublic,
    ReviewItemPublic,
    ReviewQueuePublic,
)
from lookalike.data.decisions import (
    QueueItem,
    audit_trail,
    decide,
    review_queue,
    target_of,
    undo,
)
from lookalike.db.models import PredictionRecord, ReviewDecision
from lookalike.errors import NotFound

router = APIRouter(
    prefix="/api/admin/review", tags=["admin"], dependencies=[Depends(require_admin)]
)

QueueKind = Literal[
    "likely_mislabelled",
    "closer_to_another_class",
    "several_faces",
    "doubtful_face",
    "near_duplicate",
    "blurred",
    "too_dark",
    "too_small",
    "outlier",
    "visitor_feedback",
    "low_confidence",
]  # lookalike.data.decisions.KINDS (a test keeps them equal)
_PREDICTION_ID = re.compile(r"[0-9a-f]{32}")
# Kept photos as the prediction path stored them; PGM/PPM/PBM (browsers cannot show them)
# are sent as PNG.
_PHOTO_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "gif": "image/gif",
}
_PHOTO_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "private, no-store",  # it may be erased at any time
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _as_png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data), formats=["PPM"]) as im:
        im.load()
        buf = io.BytesIO()
        (im if im.mode in ("L", "RGB", "1") else im.convert("RGB")).save(buf, "PNG")
    return buf.getvalue()


def decision_public(row: ReviewDecision) -> ReviewDecisionPublic:
    state = "undone" if row.undone_at else "applied" if row.applied_at else "pending"
    return ReviewDecisionPublic(
        id=row.id,
        item=f"{row.kind}:{target_of(row)}",
        kind=row.kind,
        sha256=row.sha256,
        prediction_id=row.prediction_id,
        action=row.action,
        label_before=row.label_before,
        label_after=row.label_after,
        score=row.score,
        actor=row.actor,
        decided_at=row.decided_at,
        state=state,
        undone_at=row.undone_at,
        undone_by=row.undone_by,
        applied_at=row.applied_at,
        applied_revision=row.applied_revision,
        result=row.result,
    )


def item_public(item: QueueItem) -> ReviewItemPublic:
    image_url = (
        f"/api/admin/dataset/images/{item.sha256}"
        if item.sha256
        else f"{router.prefix}/photos/{item.prediction_id}"
    )
    return ReviewItemPublic(
        id=item.id,
        kind=item.kind,
        label=item.label,
        suggested_label=item.suggested_label,
        score=item.score,
        reason=item.reason,
        sha256=item.sha256,
        prediction_id=item.prediction_id,
        source=item.source,
        image_url=image_url,
        pending=decision_public(item.pending) if item.pending else None,
    )


@router.get("", response_model=ReviewQueuePublic, summary="The review queue (admin)")
def get_queue(
    settings: SettingsDep,
    session: SessionDep,
    kind: QueueKind | None = Query(None, description="Only this kind"),
    label: str | None = Query(None, max_length=255, description="Only this class"),
    limit: int = Query(500, ge=1, le=2000, description="Most items answered"),
) -> ReviewQueuePublic:
    queue = review_queue(settings, session, kind=kind, label=label)
    return ReviewQueuePublic(
        data=[item_public(i) for i in queue.items[:limit]],
        count=len(queue.items),
        total=queue.total,
        kinds=queue.kinds,
        classes=queue.classes,
        report_at=queue.report_at,
    )


@router.post(
    "/decisions",
    status_code=201,
    response_model=ReviewDecisionPublic,
    summary="Decide on a queue item; applied by the next retrain (admin)",
    responses={404: {"model": ErrorPublic, "description": "No such item in the queue"}},
    dependencies=[Depends(require_csrf)],
)
def post_decision(
    body: ReviewDecisionCreate, admin: AdminDep, settings: SettingsDep, session: SessionDep
) -> ReviewDecisionPublic:
    row = decide(settings, session, body.item, body.action, admin.actor, label=body.label)
    return decision_public(row)


@router.post(
    "/decisions/{decision_id}/undo",
    response_model=ReviewDecisionPublic,
    summary="Withdraw a decision no retrain has applied yet (admin)",
    responses={409: {"model": ErrorPublic, "description": "Already applied, or already undone"}},
    dependencies=[Depends(require_csrf)],
)
def post_undo(decision_id: int, admin: AdminDep, session: SessionDep) -> ReviewDecisionPublic:
    if not 0 < decision_id < 2**31:  # what every database's integer column holds
        raise NotFound(f"No review decision {decision_id}.", code="review.decision_not_found")
    return decision_public(undo(session, decision_id, admin.actor))


@router.get(
    "/decisions", response_model=ReviewDecisionList, summary="The review audit trail (admin)"
)
def get_decisions(
    session: SessionDep,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> ReviewDecisionList:
    rows = audit_trail(session, limit=limit, offset=offset)
    count = session.scalar(select(func.count()).select_from(ReviewDecision)) or 0
    return ReviewDecisionList(data=[decision_public(r) for r in rows], count=count)


@router.get(
    "/photos/{prediction_id}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in sorted(set(_PHOTO_TYPES.values()))}}},
    summary="A visitor's photo kept with consent (admin)",
)
def get_photo(prediction_id: str, state: StateDep, session: SessionDep) -> Response:
    missing = NotFound(
        "No kept photo for that prediction (none was kept, or its owner deleted it).",
        code="review.photo_not_found",
        details={"id": prediction_id[:64]},
    )
    if not _PREDICTION_ID.fullmatch(prediction_id):
        raise missing
    row = session.get(PredictionRecord, prediction_id)
    if row is None or row.storage_key is None:
        raise missing
    try:
        data = state.store.get(row.storage_key)
    except NotFound:
        raise missing from None
    ext = row.storage_key.rsplit(".", 1)[-1].lower()
    media_type = _PHOTO_TYPES.get(ext)
    if media_type is None:
        try:
            data, media_type = _as_png(data), "image/png"
        except Exception:
            raise missing from None
    return Response(data, media_type=media_type, headers=_PHOTO_HEADERS)
