"""``/api/predictions``: answer a photo (or a webcam burst), take feedback, delete a kept photo.

Privacy: the photo is decoded and analysed in memory. Only with consent are its bytes kept
(``consented/<id>.<ext>`` in the object store) and a deletion token handed out once; the
database keeps only the token's SHA-256. Without consent nothing of the image is kept: no
bytes, no embedding, only the answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.api.deps import GalleryCache, db_session, image_url
from lookalike.api.errors import ApiError
from lookalike.api.limits import rate_limit
from lookalike.api.routes.metrics import Metrics
from lookalike.api.schemas import (
    FeedbackCreate,
    PredictionFromUpload,
    PredictionPublic,
    PredictionSummary,
)
from lookalike.artifacts import load_model
from lookalike.config import Settings
from lookalike.data.visitors import PREFIX as VISITOR_PREFIX
from lookalike.data.visitors import forget_visitor_photo
from lookalike.db import Prediction as PredictionRow
from lookalike.db import Upload, utcnow
from lookalike.errors import CannotJudge, LookalikeError, NotFound
from lookalike.inference import Prediction, Predictor
from lookalike.registry import Registry
from lookalike.storage import ObjectStore
from lookalike.vision.images import DecodedImage, check_image_bytes
from lookalike.visits import decode_visit, encode_visit

log = logging.getLogger("lookalike.api")

router = APIRouter(prefix="/api/predictions", tags=["predictions"])

CLIENTS = ("web", "api")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif"}
_EXT_TYPE = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "gif": "image/gif",
    "pgm": "image/x-portable-graymap",
    "ppm": "image/x-portable-pixmap",
    "pbm": "image/x-portable-bitmap",
}
_ID = re.compile(r"[0-9a-f]{32}")
FACE_CROP_SIDE = 160
FACE_THUMB_SIDE = 96
MAX_FACE_THUMBS = 12
MAX_TOKEN_LENGTH = 200


@dataclass
class Options:
    face_index: int | None = None
    consent: bool = False
    client: str = "api"
    visit: str | None = None


@dataclass
class Photo:
    data: bytes
    name: str


_OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["photo"],
                    "properties": {
                        "photo": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One photo, or a burst of frames of one person.",
                        },
                        "face_index": {"type": "integer", "minimum": 0},
                        "consent": {"type": "boolean", "default": False},
                        "client": {"type": "string", "enum": list(CLIENTS), "default": "api"},
                        "visit": {
                            "type": "string",
                            "description": "The 'visit' token of this visitor's previous"
                            " answer: this photo is answered together with the earlier ones.",
                        },
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictionFromUpload"}},
        },
    }
}


def _invalid(field: str, message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": kind}])


def _media_type(request: Request) -> str:
    header = request.headers.get("content-type", "")
    message = Message()
    message["content-type"] = header
    return message.get_content_type().lower() if header else ""


# --- request parsing -----------------------------------------------------------------------


async def _read_multipart(request: Request, settings: Settings) -> tuple[list[Photo], Options]:
    limit = settings.max_photos_per_request
    try:
        form = await request.form(max_files=limit, max_fields=16, max_part_size=64 * 1024)
    except StarletteHTTPException as exc:
        detail = str(exc.detail)
        if detail.startswith("Too many files"):
            raise ApiError(
                f"Too many photos: at most {limit} in one request (a webcam burst).",
                code="request.too_many_photos",
                status=413,
                details={"max_photos": limit},
            ) from None
        raise ApiError(
            f"The multipart body could not be read ({detail}). Send the photo as a"
            " multipart/form-data field named 'photo'.",
            code="request.bad_multipart",
            status=400,
        ) from None
    except ApiError:
        raise  # the body size limit
    except Exception as exc:  # a malformed body the parser choked on
        raise ApiError(
            "The multipart body could not be read. Send the photo as a multipart/form-data"
            " field named 'photo'.",
            code="request.bad_multipart",
            status=400,
            details={"reason": type(exc).__name__},
        ) from None
    try:
        photos: list[Photo] = []
        for i, part in enumerate(form.getlist("photo")):
            if not isinstance(part, UploadFile):
                raise _invalid("photo", "'photo' must be a file part, not a text field")
            label = f"photo {i}" + (f" ({part.filename[:80]})" if part.filename else "")
            if part.size is not None:  # the parser counted it: say the real size, read nothing
                check_image_bytes(part.size, settings, label)
            data = await part.read(settings.max_image_bytes + 1)  # bounded; decode refuses more
            photos.append(Photo(data, label))
        if not photos:
            raise _invalid("photo", "at least one photo is required (field 'photo')", "missing")
        if len(photos) > limit:
            raise ApiError(
                f"Too many photos: at most {limit} in one request (a webcam burst).",
                code="request.too_many_photos",
                status=413,
                details={"max_photos": limit, "photos": len(photos)},
            )
        options = Options(
            face_index=_form_int(form.get("face_index"), "face_index"),
            consent=_form_bool(form.get("consent"), "consent"),
            client=_form_client(form.get("client")),
            visit=_text(form.get("visit"), "visit") or None,
        )
    finally:
        await form.close()
    return photos, options


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(field, f"'{field}' must be a text field, not a file")
    return value.strip()


def _form_int(value: Any, field: str) -> int | None:
    text = _text(value, field)
    if text is None or text == "" or text.lower() == "null":
        return None
    if not re.fullmatch(r"\d{1,4}", text):
        raise _invalid(field, f"'{field}' must be a whole number >= 0", "int_parsing")
    return int(text)


def _form_bool(value: Any, field: str) -> bool:
    text = _text(value, field)
    if text is None:
        return False
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _invalid(field, f"'{field}' must be true or false", "bool_parsing")


def _form_client(value: Any) -> str:
    text = _text(value, "client")
    if text is None or text == "":
        return "api"
    if text not in CLIENTS:
        raise _invalid("client", "'client' must be 'web' or 'api'", "literal_error")
    return text


async def _read_json(request: Request, settings: Settings) -> PredictionFromUpload:
    body = await request.body()
    try:
        return PredictionFromUpload.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]
        ) from None


def _take_upload(sessions: Any, store: ObjectStore, key: str) -> bytes:
    """Claim a received upload for this prediction (once) and take its bytes out of the store."""
    now = utcnow()
    with sessions() as session, session.begin():
        row = session.get(Upload, key)
        if row is None:
            raise NotFound(
                "No upload with that key. Ask for a new upload URL (POST /api/uploads).",
                code="upload.not_found",
            )
        if row.consumed_at is not None:
            raise ApiError(
                "This upload was already used for a prediction; upload the photo again.",
                code="upload.used",
                status=409,
            )
        if row.received_at is None:
            raise ApiError(
                "Nothing was uploaded with that key yet: PUT the photo to the signed URL first.",
                code="upload.not_received",
                status=409,
            )
        if row.expires_at <= now:
            raise ApiError(
                "This upload has expired; ask for a new upload URL.",
                code="upload.expired",
                status=410,
            )
        claimed = session.execute(
            update(Upload)
            .where(Upload.key == key, Upload.consumed_at.is_(None))
            .values(consumed_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 1) != 1:
            raise ApiError(
                "This upload was already used for a prediction; upload the photo again.",
                code="upload.used",
                status=409,
            )
    object_key = f"uploads/{key}"
    try:
        return store.get(object_key)
    except NotFound:
        raise ApiError(
            "The uploaded photo is gone (it expired); upload it again.",
            code="upload.expired",
            status=410,
        ) from None
    finally:
        store.delete(object_key)  # one prediction per upload; nothing kept without consent


# --- the work (in the threadpool) ----------------------------------------------------------


def face_crop_data_url(
    image: DecodedImage, box: tuple[float, ...] | None, side: int = FACE_CROP_SIDE
) -> str | None:
    """A small JPEG data URL of the face box (clipped to the image), for display."""
    if box is None:
        return None
    x, y, w, h = box
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(image.width, int(np.ceil(x + w))), min(image.height, int(np.ceil(y + h)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    crop = Image.fromarray(image.rgb[y0:y1, x0:x1])
    crop.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _extension(image: DecodedImage, data: bytes) -> str:
    if image.format == "PPM":  # Pillow's PPM plugin reads PBM, PGM and PPM
        return {b"P1": "pbm", b"P4": "pbm", b"P2": "pgm", b"P5": "pgm"}.get(data[:2], "ppm")
    return _FORMAT_EXT.get(image.format, "bin")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def feedback_token(settings: Settings, prediction_id: str) -> str:
    """The secret that proves feedback comes from whoever got the answer (returned once
    with it). An HMAC of the prediction id: nothing to store, and without the answer nobody
    can like a prediction (a like makes a kept photo eligible for training)."""
    mac = hmac.new(settings.signing_key("feedback"), prediction_id.encode(), "sha256").digest()
    return base64.urlsafe_b64encode(mac[:24]).decode("ascii")


def prediction_row(
    prediction: Prediction,
    answer: dict[str, Any],
    *,
    prediction_id: str,
    client: str,
    storage_key: str | None = None,
    token: str | None = None,
) -> PredictionRow:
    """The log row of one answer (``answer`` is ``prediction.to_dict()``, computed once).

    Consent is recorded only when a photo was actually stored; the token is kept hashed.
    """
    return PredictionRow(
        id=prediction_id,
        created_at=utcnow(),
        model_version=prediction.model_version,
        label=prediction.label,
        best_label=prediction.best_label,
        probability=float(prediction.probability),
        probabilities=answer["probabilities"],
        match_score=float(prediction.match_score),
        no_strong_match=bool(prediction.no_strong_match),
        faces_found=len(prediction.faces),
        face_index=prediction.face_index,
        frames_used=prediction.frames_used,
        latency_ms=float(prediction.latency_ms),
        client=client,
        consent=storage_key is not None,
        storage_key=storage_key,
        deletion_token_hash=token_hash(token) if token else None,
    )


def _record_no_face(app_state: Any, options: Options, latency_ms: float) -> None:
    """Log a request that could not be judged (no face, or one too poor; outcome
    ``no_face``: nothing of the photo, no answer) for the dashboard; the visitor still gets
    the 422 saying why."""
    try:
        version = app_state.predictor.load().info.version
        with app_state.sessions() as session, session.begin():
            session.add(
                PredictionRow(
                    model_version=version,
                    label=None,
                    best_label=None,
                    probability=None,
                    probabilities=[],
                    match_score=None,
                    no_strong_match=False,
                    outcome="no_face",
                    faces_found=0,
                    frames_used=0,
                    latency_ms=float(latency_ms),
                    client=options.client,
                    consent=False,
                )
            )
    except Exception:
        log.exception("could not log a request without a face")


def _predict_and_record(app_state: Any, photos: list[Photo], options: Options) -> dict[str, Any]:
    settings: Settings = app_state.settings
    predictor: Predictor = app_state.predictor
    store: ObjectStore = app_state.store
    metrics: Metrics = app_state.metrics
    gallery: GalleryCache = app_state.gallery

    started = analysed = time.perf_counter()
    try:
        visit = None
        if options.visit:  # only then: the model's embedding space checks the token
            model = predictor.load()
            visit = decode_visit(
                options.visit, settings, model.info.backbone_key, model.gallery.shape[1]
            )
        analysed = time.perf_counter()
        prediction = predictor.predict(
            [p.data for p in photos],
            face_index=options.face_index,
            visit=visit,
            names=[p.name for p in photos],
        )
    except LookalikeError as exc:
        metrics.refusals.labels(exc.code).inc()
        if isinstance(exc, CannotJudge):
            _record_no_face(app_state, options, (time.perf_counter() - analysed) * 1000)
        raise
    metrics.prediction_seconds.observe(time.perf_counter() - started)

    first, image = prediction.frame_index, prediction.image
    assert image is not None  # the predictor keeps the frame it answered from
    face = prediction.face
    crop = face_crop_data_url(image, face.box if face is not None else None)
    try:
        class_image = gallery.get(predictor).class_image_url(prediction.best_label)
    except LookalikeError:
        class_image = None

    prediction_id = uuid.uuid4().hex
    storage_key = token = None
    if options.consent:
        ext = _extension(image, photos[first].data)
        storage_key = f"consented/{prediction_id}.{ext}"
        store.put(storage_key, photos[first].data, _EXT_TYPE.get(ext, "application/octet-stream"))
        token = secrets.token_urlsafe(24)

    answer = prediction.to_dict()
    row = prediction_row(
        prediction,
        answer,
        prediction_id=prediction_id,
        client=options.client,
        storage_key=storage_key,
        token=token,
    )
    try:
        with app_state.sessions() as session, session.begin():
            session.add(row)
    except BaseException:
        # No half-written record: a kept photo without its row would be unreachable.
        if storage_key is not None:
            try:
                store.delete(storage_key)
            except Exception:
                log.exception("could not remove %s after a failed database write", storage_key)
        raise

    metrics.predictions.labels(prediction.best_label).inc()
    if prediction.no_strong_match:
        metrics.no_strong_match.inc()
    nearest = [
        {"label": n["label"], "similarity": n["similarity"], "url": image_url(n["sha256"])}
        for n in answer.pop("nearest")
    ]
    for lookalike in answer["answer"]["lookalikes"]:
        ref = lookalike.pop("reference")
        lookalike["reference_url"] = image_url(ref["sha256"]) if ref else None
        lookalike["reference_similarity"] = ref["similarity"] if ref else None
    for face in answer["faces"][:MAX_FACE_THUMBS]:
        face["thumbnail"] = face_crop_data_url(image, tuple(face["box"]), FACE_THUMB_SIDE)
    return {
        **answer,
        "id": row.id,
        "created_at": row.created_at,
        "nearest": nearest,
        "visit": encode_visit(prediction.visit(), settings),
        "face_crop": crop,
        "class_image_url": class_image,
        "consent": row.consent,
        "deletion_token": token,
        "feedback_token": feedback_token(settings, row.id),
    }


# --- routes --------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=PredictionPublic,
    dependencies=[Depends(rate_limit)],
    openapi_extra=_OPENAPI_BODY,
    summary="Who does this face look like?",
)
async def create_prediction(request: Request) -> dict[str, Any]:
    """Multipart ``photo`` field(s) (+ ``face_index``, ``consent``, ``client``), or JSON
    ``{"upload_key", "face_index", "consent", "client"}`` for a photo sent to a signed URL."""
    app_state = request.app.state
    settings: Settings = app_state.settings
    predictor: Predictor = app_state.predictor
    await run_in_threadpool(predictor.load)  # 503 model.none before reading any photo
    media = _media_type(request)
    if media == "multipart/form-data":
        photos, options = await _read_multipart(request, settings)
    elif media == "application/json" or media.endswith("+json"):
        payload = await _read_json(request, settings)
        data = await run_in_threadpool(
            _take_upload, app_state.sessions, app_state.store, payload.upload_key
        )
        photos = [Photo(data, "the uploaded photo")]
        options = Options(payload.face_index, payload.consent, payload.client, payload.visit)
    else:
        raise ApiError(
            f"Expected multipart/form-data (photo files) or application/json (an upload_key);"
            f" got {media or 'no content type'}.",
            code="request.unsupported_media_type",
            status=415,
            details={"content_type": media},
        )
    return await run_in_threadpool(_predict_and_record, app_state, photos, options)


def _summary(row: PredictionRow) -> PredictionSummary:
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


def _get_row(session: Session, prediction_id: str) -> PredictionRow:
    # Ids are uuid4 hex: anything else is unknown without asking the database (which may
    # refuse odd text, e.g. PostgreSQL and NUL characters).
    row = session.get(PredictionRow, prediction_id) if _ID.fullmatch(prediction_id) else None
    if row is None:
        raise NotFound(
            "No prediction with that id.",
            code="prediction.not_found",
            details={"id": prediction_id[:64]},
        )
    return row


@router.post(
    "/{prediction_id}/feedback",
    response_model=PredictionSummary,
    dependencies=[Depends(rate_limit)],
    summary="Like or dislike an answer, optionally naming the right class",
)
def give_feedback(
    request: Request,
    prediction_id: str,
    body: FeedbackCreate,
    session: Session = Depends(db_session),
) -> PredictionSummary:
    settings: Settings = request.app.state.settings
    with session.begin():
        row = _get_row(session, prediction_id)
        proof = body.token or ""
        given = proof.encode("utf-8", "surrogatepass")  # any text: compared as bytes
        by_answer = hmac.compare_digest(given, feedback_token(settings, row.id).encode())
        by_deletion = bool(row.deletion_token_hash) and hmac.compare_digest(
            token_hash(proof[:MAX_TOKEN_LENGTH]), row.deletion_token_hash or ""
        )
        if not (by_answer or by_deletion):
            raise LookalikeError(
                "Feedback needs the 'token' that came with the answer (feedback_token), or"
                " the photo's deletion token: only the person who got the answer can rate it.",
                code="feedback.bad_token",
                status=403,
            )
        if body.label is not None:
            labels = [p["label"] for p in row.probabilities]
            if body.label not in labels:
                raise LookalikeError(
                    f"{body.label!r} is not a class of model {row.model_version}; pick one of"
                    f" the classes listed in the answer.",
                    code="feedback.unknown_label",
                    status=422,
                    details={"label": body.label, "labels": labels},
                )
        row.feedback = body.feedback
        row.feedback_label = body.label
        row.feedback_at = utcnow()
    return _summary(row)


@router.delete(
    "/{prediction_id}",
    status_code=204,
    response_class=Response,
    dependencies=[Depends(rate_limit)],
    summary="Delete a kept photo with its deletion token",
)
def delete_photo(
    request: Request,
    prediction_id: str,
    token: str | None = Query(None, description="The deletion token shown once"),
    x_deletion_token: str | None = Header(None),
    session: Session = Depends(db_session),
) -> Response:
    given = token or x_deletion_token
    store: ObjectStore = request.app.state.store
    with session.begin():
        row = _get_row(session, prediction_id)
        if (
            not given
            or len(given) > MAX_TOKEN_LENGTH
            or row.deletion_token_hash is None
            or not hmac.compare_digest(token_hash(given), row.deletion_token_hash)
        ):
            raise LookalikeError(
                "That deletion token does not match this prediction. Use the token shown"
                " when the photo was kept (query ?token= or header X-Deletion-Token).",
                code="prediction.bad_token",
                status=403,
            )
        if row.storage_key is not None:
            store.delete(row.storage_key)
            row.storage_key = None
    # If it was gathered into the training set, it leaves it (and the embedding cache) too,
    # and a champion trained on it is retrained without it soon, not at the next schedule.
    settings: Settings = request.app.state.settings
    if forget_visitor_photo(settings, prediction_id) and _champion_trained_on(
        request.app.state.registry, VISITOR_PREFIX + prediction_id
    ):
        from lookalike.jobs import Jobs

        try:
            Jobs(settings).enqueue_retrain("deletion", "a visitor's deletion")
        except Exception:  # the photo is gone either way; the schedule retrains later
            log.exception("could not queue the retrain after a deletion")
    return Response(status_code=204)


def _champion_trained_on(registry: Registry, source: str) -> bool:
    """Whether the registry's champion (loaded here or not yet) was trained on ``source``."""
    try:
        return source in load_model(registry.home, registry.champion()).info.visitor_sources
    except LookalikeError:
        return False
