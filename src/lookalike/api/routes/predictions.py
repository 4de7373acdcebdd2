"""``/api/predictions``: answer a photo (or a webcam burst), take feedback, delete a kept photo.

Each route parses the request (``lookalike.api.forms``), calls one function of
``lookalike.services.predictions`` and shapes the answer (``lookalike.api.answers``).
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from lookalike.api import forms
from lookalike.api.answers import prediction_public
from lookalike.api.deps import SessionDep, StateDep, rate_limit
from lookalike.api.errors import ApiError
from lookalike.api.schemas import FeedbackCreate, PredictionPublic, PredictionSummary
from lookalike.api.state import AppState
from lookalike.db import PredictionRecord
from lookalike.errors import LookalikeError
from lookalike.services import models, predictions
from lookalike.services.predictions import Photo, PredictOptions

log = logging.getLogger("lookalike.api")

router = APIRouter(
    prefix="/api/predictions", tags=["predictions"], dependencies=[Depends(rate_limit)]
)


def _answer(state: AppState, photos: list[Photo], options: PredictOptions) -> PredictionPublic:
    started = time.perf_counter()
    try:
        recorded = predictions.answer_and_record(
            state.predictor, state.sessions, state.store, photos, options, state.enrolled
        )
    except LookalikeError as exc:
        state.metrics.refusals.labels(exc.code).inc()
        raise
    state.metrics.prediction_seconds.observe(time.perf_counter() - started)
    state.metrics.predictions.labels(recorded.prediction.best_label).inc()
    if recorded.prediction.no_strong_match:
        state.metrics.no_strong_match.inc()
    try:
        gallery = state.gallery.get(state.predictor)
    except LookalikeError:
        gallery = None
    return prediction_public(recorded, gallery)


@router.post(
    "",
    status_code=201,
    response_model=PredictionPublic,
    openapi_extra=forms.OPENAPI_BODY,
    summary="Who does this face look like?",
)
async def create_prediction(request: Request, state: StateDep) -> PredictionPublic:
    """Multipart ``photo`` field(s) (+ ``face_index``, ``consent``, ``client``, ``visit``),
    or JSON ``{"upload_key", "face_index", "consent", "client", "visit"}`` for a photo sent
    to a signed URL."""
    await run_in_threadpool(state.predictor.load)  # 503 model.none before reading any photo
    media = forms.media_type(request)
    if media == "multipart/form-data":
        photos, options = await forms.read_multipart(request, state.settings)
    elif media == "application/json" or media.endswith("+json"):
        payload = await forms.read_json(request)
        photo = await run_in_threadpool(
            predictions.claim_upload, state.sessions, state.store, payload.upload_key
        )
        photos = [photo]
        options = PredictOptions(payload.face_index, payload.consent, payload.client, payload.visit)
    else:
        raise ApiError(
            f"Expected multipart/form-data (photo files) or application/json (an upload_key);"
            f" got {media or 'no content type'}.",
            code="request.unsupported_media_type",
            status=415,
            details={"content_type": media},
        )
    return await run_in_threadpool(_answer, state, photos, options)


def _summary(row: PredictionRecord) -> PredictionSummary:
    return PredictionSummary(
        id=row.id,
        created_at=row.created_at,
        model_version=row.model_version,
        label=row.label,
        best_label=row.best_label,
        probability=row.probability,
        no_strong_match=row.no_strong_match,
        client=row.client,
        consent=row.consent,
        photo_kept=row.storage_key is not None,
        feedback=row.feedback,
        feedback_label=row.feedback_label,
        feedback_at=row.feedback_at,
    )


@router.post(
    "/{prediction_id}/feedback",
    response_model=PredictionSummary,
    summary="Like or dislike an answer, optionally naming the right class",
)
def give_feedback(
    prediction_id: str, body: FeedbackCreate, state: StateDep, session: SessionDep
) -> PredictionSummary:
    row = predictions.give_feedback(
        session, state.settings, prediction_id, body.feedback, body.label, body.token
    )
    return _summary(row)


@router.delete(
    "/{prediction_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a kept photo with its deletion token",
)
def delete_photo(
    prediction_id: str,
    state: StateDep,
    session: SessionDep,
    token: str | None = Query(None, description="The deletion token shown once"),
    x_deletion_token: str | None = Header(None),
) -> Response:
    trained_on = predictions.delete_kept_photo(
        session, state.store, state.registry, prediction_id, token or x_deletion_token
    )
    if trained_on:  # the champion saw it: retrain soon, not at the next schedule
        models.retrain_after_deletion(state.jobs, "a visitor's deletion")
    return Response(status_code=204)
