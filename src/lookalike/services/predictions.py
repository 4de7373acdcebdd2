"""Answer photos and keep the log: the prediction path's decode -> predict -> record steps.

Privacy: a photo is decoded and analysed in memory. Only with consent are its bytes kept
(``consented/<id>.<ext>`` in the object store) and a deletion token handed out once; the
database keeps only the token's SHA-256. Without consent nothing of the image is kept: no
bytes, no embedding, only the answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from lookalike.config import Settings
from lookalike.contributions import crop_key
from lookalike.data.store import VISITOR
from lookalike.db import PredictionRecord, utcnow
from lookalike.enrolled import EnrolledGallery
from lookalike.errors import CannotJudge, LookalikeError, NotFound
from lookalike.inference import AnswerKind, Neighbour, Prediction, Predictor
from lookalike.registry import Registry
from lookalike.retention import erase_kept_photo, forget_trained_on
from lookalike.services import uploads
from lookalike.storage import ObjectStore
from lookalike.vision.images import DecodedImage
from lookalike.visits import decode_visit, encode_visit

log = logging.getLogger("lookalike.services")

Client = Literal["web", "api"]
Row = TypeVar("Row")
MAX_TOKEN_LENGTH = 200
_ID = re.compile(r"[0-9a-f]{32}")
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


@dataclass(frozen=True)
class Photo:
    """One photo as it arrived (bytes, not yet decoded) and what to call it in errors."""

    data: bytes
    name: str


@dataclass(frozen=True)
class PredictOptions:
    face_index: int | None = None
    consent: bool = False
    client: Client = "api"
    visit: str | None = None  # the signed visit token of the visitor's previous answer


@dataclass(frozen=True)
class RecordedPrediction:
    """An answer and its log row; the secrets are handed to the visitor once, never stored."""

    prediction: Prediction
    record: PredictionRecord
    image: DecodedImage  # the frame answered from (for the face crops shown)
    visit: str  # signed: the looks so far, to answer the next photo together
    feedback_token: str
    deletion_token: str | None  # only when the photo was kept (consent)


# --- tokens ----------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def feedback_token(settings: Settings, prediction_id: str) -> str:
    """The secret that proves feedback comes from whoever got the answer (returned once
    with it). An HMAC of the prediction id: nothing to store, and without the answer nobody
    can like a prediction (a like makes a kept photo eligible for training)."""
    mac = hmac.new(settings.signing_key("feedback"), prediction_id.encode(), "sha256").digest()
    return base64.urlsafe_b64encode(mac[:24]).decode("ascii")


# --- answering -------------------------------------------------------------------------------


def claim_upload(sessions: sessionmaker[Session], store: ObjectStore, key: str) -> Photo:
    """Claim a received upload for one prediction (once) and take its bytes out of the store."""
    return Photo(uploads.claim_upload(sessions, store, key), "the uploaded photo")


def predict(
    predictor: Predictor,
    settings: Settings,
    photos: list[Photo],
    options: PredictOptions,
    withheld: Collection[str] = (),
) -> Prediction:
    """The engine's answer: the visit token checked in the model's embedding space, every
    photo decoded once (by the predictor, one at a time). ``withheld``: classes of people
    who deleted their data since the model was trained (never named nor shown)."""
    visit = None
    if options.visit:  # only then: the model's embedding space checks the token
        model = predictor.load()
        visit = decode_visit(
            options.visit, settings, model.info.backbone_key, model.gallery.shape[1]
        )
    return predictor.predict(
        [p.data for p in photos],
        face_index=options.face_index,
        visit=visit,
        names=[p.name for p in photos],
        withheld=withheld,
    )


def answer_and_record(
    predictor: Predictor,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    photos: list[Photo],
    options: PredictOptions,
    enrolled: EnrolledGallery | None = None,
) -> RecordedPrediction:
    """Answer ``photos`` (one look) and log the answer; with consent keep the photo the
    answer came from. ``enrolled``: contributors who joined since the model was trained,
    answered "this is X" when they pass its threshold. A photo that cannot be judged is
    logged as outcome ``no_face`` and its ``CannotJudge`` raised for the visitor."""
    settings = predictor.settings
    started = time.perf_counter()
    contributors: dict[str, str] = {}
    withheld: set[str] = set()
    if enrolled is not None:
        info = predictor.load().info
        contributors = info.contributors
        enrolled.refresh()  # once per request: withheld and match read the same state
        withheld = enrolled.withheld(contributors, info.backbone_key, refresh=False)
    try:
        prediction = predict(predictor, settings, photos, options, withheld)
    except CannotJudge:
        record_cannot_judge(predictor, sessions, options.client, started)
        raise
    if enrolled is not None:
        prediction = with_enrolled(prediction, enrolled, set(contributors.values()), refresh=False)
    image = prediction.image
    assert image is not None  # the predictor keeps the frame it answered from
    record = new_record(prediction, options.client)
    token = None
    if options.consent:
        data = photos[prediction.frame_index].data
        ext = _extension(image, data)
        record.storage_key = f"consented/{record.id}.{ext}"
        store.put(record.storage_key, data, _EXT_TYPE.get(ext, "application/octet-stream"))
        token = secrets.token_urlsafe(24)
        record.consent = True  # recorded only when a photo was actually stored
        record.deletion_token_hash = token_hash(token)
    try:
        with sessions() as session, session.begin():
            session.add(record)
    except BaseException:
        # No half-written record: a kept photo without its row would be unreachable.
        if record.storage_key is not None:
            try:
                store.delete(record.storage_key)
            except Exception:
                log.exception(
                    "could not remove %s after a failed database write", record.storage_key
                )
        raise
    return RecordedPrediction(
        prediction=prediction,
        record=record,
        image=image,
        visit=encode_visit(prediction.visit(), settings),
        feedback_token=feedback_token(settings, record.id),
        deletion_token=token,
    )


def with_enrolled(
    prediction: Prediction,
    enrolled: EnrolledGallery,
    known: Collection[str] = (),
    refresh: bool = True,
) -> Prediction:
    """The answer, or "this is X" for an enrolled contributor who passes the model's
    threshold and scores above the model's own best class. ``known``: contribution ids the
    model has as classes already (it answers for them itself)."""
    found = enrolled.match(prediction.vector, prediction.backbone_key, known, refresh)
    if found is None:
        return prediction
    if found.score < prediction.threshold or (
        prediction.kind == AnswerKind.SAME_PERSON and found.score <= prediction.match_score
    ):
        return prediction
    key = crop_key(found.contribution_id, found.crop)
    reference = Neighbour(
        found.name, found.crop_similarity, "", key, (found.contribution_id, found.crop)
    )
    return prediction.as_enrolled(found.name, found.score, reference)


def new_record(prediction: Prediction, client: Client) -> PredictionRecord:
    """The log row of one answer: no image, no embedding (consent adds the photo later)."""
    return PredictionRecord(
        id=uuid.uuid4().hex,
        created_at=utcnow(),
        model_version=prediction.model_version,
        label=prediction.label,
        best_label=prediction.best_label,
        probability=float(prediction.probability),
        probabilities=[
            {"label": k, "probability": round(v, 4)} for k, v in prediction.probabilities
        ],
        match_score=float(prediction.match_score),
        no_strong_match=bool(prediction.no_strong_match),
        faces_found=len(prediction.faces),
        face_index=prediction.face_index,
        frames_used=prediction.frames_used,
        latency_ms=float(prediction.latency_ms),
        client=client,
        consent=False,
    )


def record_cannot_judge(
    predictor: Predictor, sessions: sessionmaker[Session], client: Client, started: float
) -> None:
    """Log a request that could not be judged (no face, or one too poor; outcome
    ``no_face``: nothing of the photo, no answer) for the dashboard. Never raises: the
    visitor gets the error saying why either way."""
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        version = predictor.load().info.version
        with sessions() as session, session.begin():
            session.add(cannot_judge_record(version, latency_ms, client))
    except Exception:
        log.exception("could not log a request without a face")


def cannot_judge_record(model_version: str, latency_ms: float, client: Client) -> PredictionRecord:
    """The log row of a request that could not be judged: no answer, nothing of the photo."""
    return PredictionRecord(
        model_version=model_version,
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
        client=client,
        consent=False,
    )


def _extension(image: DecodedImage, data: bytes) -> str:
    if image.format == "PPM":  # Pillow's PPM plugin reads PBM, PGM and PPM
        return {b"P1": "pbm", b"P4": "pbm", b"P2": "pgm", b"P5": "pgm"}.get(data[:2], "ppm")
    return _FORMAT_EXT.get(image.format, "bin")


# --- after the answer ------------------------------------------------------------------------


def by_hex_id(session: Session, model: type[Row], record_id: str, error: NotFound) -> Row:
    """The row of ``model`` with this uuid4-hex id, else ``error``. Anything that is not such
    an id is unknown without asking the database (which may refuse odd text, e.g.
    PostgreSQL and NUL characters)."""
    row = session.get(model, record_id) if _ID.fullmatch(record_id) else None
    if row is None:
        raise error
    return row


def token_matches(given: str | None, stored_hash: str | None) -> bool:
    """Whether ``given`` is the token whose SHA-256 was stored (compared in constant time)."""
    return bool(
        given
        and len(given) <= MAX_TOKEN_LENGTH
        and stored_hash is not None
        and hmac.compare_digest(token_hash(given), stored_hash)
    )


def get_record(session: Session, prediction_id: str) -> PredictionRecord:
    return by_hex_id(
        session,
        PredictionRecord,
        prediction_id,
        NotFound(
            "No prediction with that id.",
            code="prediction.not_found",
            details={"id": prediction_id[:64]},
        ),
    )


def give_feedback(
    session: Session,
    settings: Settings,
    prediction_id: str,
    feedback: Literal["like", "dislike"],
    label: str | None,
    token: str | None,
) -> PredictionRecord:
    """Record a visitor's like or dislike (and the class it should have been). Needs the
    answer's feedback token or the kept photo's deletion token."""
    with session.begin():
        row = get_record(session, prediction_id)
        proof = token or ""
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
        if label is not None:
            labels = [p["label"] for p in row.probabilities]
            if label not in labels:
                raise LookalikeError(
                    f"{label!r} is not a class of model {row.model_version}; pick one of"
                    f" the classes listed in the answer.",
                    code="feedback.unknown_label",
                    status=422,
                    details={"label": label, "labels": labels},
                )
        row.feedback = feedback
        row.feedback_label = label
        row.feedback_at = utcnow()
    return row


def delete_kept_photo(
    session: Session,
    store: ObjectStore,
    registry: Registry,
    prediction_id: str,
    token: str | None,
) -> bool:
    """Delete a kept photo with its deletion token, and what came with it (the token's hash,
    the feedback, the consent). If it was gathered into the training set it leaves it (the
    dataset, the embedding cache, the splits) too. Returns whether the champion was trained
    on it: the caller then queues a retrain, so that it is replaced soon, not at the next
    schedule."""
    with session.begin():
        row = get_record(session, prediction_id)
        if row.deletion_token_hash is None and row.storage_key is None:
            raise NotFound(
                "Nothing is kept for this prediction: no photo and no token (it was deleted,"
                " or no photo was kept).",
                code="prediction.nothing_kept",
            )
        if not token_matches(token, row.deletion_token_hash):
            raise LookalikeError(
                "That deletion code does not match this photo: copy the whole code you were"
                " shown when the photo was kept.",
                code="prediction.bad_token",
                status=403,
                details={"send": "the token as ?token= or the X-Deletion-Token header"},
            )
        erase_kept_photo(store, row)
    return forget_trained_on(registry, {VISITOR + prediction_id}, "a visitor's deletion")
