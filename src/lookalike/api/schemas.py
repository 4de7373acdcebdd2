"""Request and response bodies (pydantic). ``XCreate`` comes in, ``XPublic`` goes out; lists
are ``{"data": [...], "count": n}``. Nothing here ever carries a file path."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

Client = Literal["web", "api"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorPublic(BaseModel):
    """Every non-2xx answer."""

    error: ErrorDetail


# --- predictions ---------------------------------------------------------------------------


class PredictionFromUpload(_In):
    """JSON body of ``POST /api/predictions`` for a photo sent to a signed upload URL."""

    upload_key: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    face_index: int | None = Field(None, ge=0, le=1000)
    consent: bool = False
    client: Client = "api"
    visit: str | None = Field(
        None,
        max_length=4096,
        description="The 'visit' token of this visitor's previous answer: answered together.",
    )


class LabelProbability(BaseModel):
    label: str
    probability: float


class NeighbourPublic(BaseModel):
    label: str
    similarity: float
    url: str = Field(description="/api/images/{sha256} of the reference photo")


class FacePublic(BaseModel):
    number: int = Field(description="1, 2, ...: largest first; face_index is number - 1")
    box: list[float] = Field(description="x, y, width, height in pixels of the photo")
    landmarks: list[list[float]]
    score: float
    thumbnail: str | None = Field(None, description="data: URL (JPEG) of this face")


class LookalikePublic(BaseModel):
    label: str
    score: float = Field(description="Cosine of the face and the class's centre (centred)")
    strength: float = Field(
        description="0-1: the share of strangers (the gallery's people, each left out in"
        " turn) who resemble anyone here less than this visitor resembles this class"
    )
    strength_words: Literal["very strong", "strong", "moderate", "slight"]
    reference_url: str | None = Field(description="The class's photo closest to this face")
    reference_similarity: float | None


class AnswerPublic(BaseModel):
    kind: Literal["same_person", "lookalike"] = Field(
        description="same_person: 'this is X' (a person in the gallery); lookalike: who the"
        " visitor resembles. The third kind, 'cannot judge', is a 422 face.* error."
    )
    names: list[str] = Field(description="Who the answer names: one, or two in a tie")
    tie: bool = Field(description="The top two are closer than the noise between photos")
    message: str
    lookalikes: list[LookalikePublic] = Field(description="Strongest first")
    looks: int = Field(description="Photos or bursts answered together (a visit)")


class FaceQualityPublic(BaseModel):
    face_px: float
    brightness: float
    sharpness: float


class SkippedFramePublic(BaseModel):
    index: int = Field(description="0-based, in the order the photos were sent")
    code: str = Field(description="Why, as the error code it would have had alone")
    message: str


class PredictionPublic(BaseModel):
    """The answer to a photo (or a webcam burst, or a visit of several)."""

    id: str
    created_at: datetime
    answer: AnswerPublic
    label: str | None = Field(description="Same person: who; null for a lookalike answer")
    best_label: str = Field(description="The answer's first name")
    probability: float
    no_strong_match: bool
    match_score: float
    threshold: float
    probabilities: list[LabelProbability]
    nearest: list[NeighbourPublic]
    faces_found: int
    faces: list[FacePublic]
    face_index: int | None
    face_box: list[float] | None
    quality: FaceQualityPublic | None
    frames_used: int
    frame_index: int = Field(description="The photo `faces` and `face_crop` come from (0-based)")
    skipped_frames: list[SkippedFramePublic] = Field(
        description="Photos of a burst without a usable face (the others answered)"
    )
    model_version: str
    latency_ms: float
    face_crop: str | None = Field(description="data: URL (JPEG) of the face region")
    visit: str = Field(
        description="Send back as 'visit' with the next photo to answer both together;"
        " drop it to start over (signed; expires after LOOKALIKE_VISIT_MINUTES)"
    )
    class_image_url: str | None
    consent: bool
    deletion_token: str | None = Field(
        description="Only when consent was given and the photo kept; shown once"
    )
    deletion_code: str | None = Field(
        None, description="The same, as one code for the /forget page: p.<id>.<token>"
    )
    feedback_token: str = Field(
        description="Send as 'token' with POST /api/predictions/{id}/feedback; shown once"
    )


class FeedbackCreate(_In):
    feedback: Literal["like", "dislike"]
    label: str | None = Field(
        None, max_length=255, description="The class it should have been (optional)"
    )
    token: str | None = Field(
        None,
        max_length=200,
        description="The answer's feedback_token (or the photo's deletion token): proof that"
        " the feedback comes from whoever got the answer",
    )


class PredictionSummary(BaseModel):
    id: str
    created_at: datetime
    model_version: str
    label: str | None
    best_label: str
    probability: float
    no_strong_match: bool
    client: Client
    consent: bool
    photo_kept: bool
    feedback: Literal["like", "dislike"] | None
    feedback_label: str | None
    feedback_at: datetime | None


# --- uploads -------------------------------------------------------------------------------


class UploadCreate(_In):
    content_type: str = Field(min_length=1, max_length=100, examples=["image/jpeg"])
    size: StrictInt = Field(gt=0, description="Size of the photo in bytes")


class UploadPublic(BaseModel):
    key: str
    url: str = Field(
        description="Signed URL: PUT the raw bytes there with `headers`. Relative (this"
        " server) or absolute (straight to S3 with a presigned URL)."
    )
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers to send with the PUT, exactly (the Content-Type asked for); the"
        " body must be exactly `max_bytes` bytes (on S3 its length is signed).",
    )
    content_type: str
    expires_at: datetime
    max_bytes: int


class UploadReceived(BaseModel):
    key: str
    size: int
    received_at: datetime


# --- classes, models, health ---------------------------------------------------------------


class ClassPublic(BaseModel):
    name: str
    images: int
    image_url: str | None


class ClassList(BaseModel):
    data: list[ClassPublic]
    count: int


class ModelMetrics(BaseModel):
    accuracy: float | None
    macro_f1: float | None
    n: int | None


class ModelPublic(BaseModel):
    version: str
    created_at: str
    backbone: str
    backbone_key: str
    head: str
    labels: list[str]
    classes: int
    gallery_images: int
    threshold: float
    metrics: ModelMetrics
    test_version: int
    dataset_revision: int


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    model: str | None = Field(description="The version answering now.")
    champion: str | None = Field(
        None, description="The registry's champion (differs from `model` while it loads)."
    )
    model_errors: dict[str, str] = Field(
        default_factory=dict, description="Champions that failed to load, and why."
    )
    database: Literal["ok", "error"]


class ModelEventPublic(BaseModel):
    at: datetime
    kind: Literal["register", "decision", "promote", "rollback"]
    version: str
    previous: str | None
    promoted: bool | None
    reason: str
    actor: str | None = Field(description="Who did it (admins only; null otherwise)")
    figures: dict[str, Any]


class ModelVersionPublic(BaseModel):
    version: str
    alias: Literal["champion", "challenger"] | None
    created_at: datetime
    created_by: str | None = Field(description="Who made it (admins only; null otherwise)")
    backbone: str | None
    head: str | None
    labels: list[str]
    dataset_revision: int | None
    test_version: int | None
    metrics: dict[str, Any]
    decision: Literal["promoted", "refused"] | None


class ModelVersionDetail(ModelVersionPublic):
    events: list[ModelEventPublic] = Field(description="This version's history, oldest first.")


class ModelsPublic(BaseModel):
    data: list[ModelVersionPublic] = Field(description="Every version, newest first.")
    count: int
    champion: str | None
    challenger: str | None
    events: list[ModelEventPublic] = Field(description="Promotions and rollbacks, newest first.")


class PromoteRequest(_In):
    reason: str = Field("promoted by an admin", min_length=1, max_length=500)


class RollbackRequest(_In):
    to: str | None = Field(
        None,
        max_length=32,
        pattern=r"^m\d{4,}$",
        description="A version (m0003). Default: the previous champion.",
    )
    reason: str = Field("rolled back by an admin", min_length=1, max_length=500)


class ChampionChange(BaseModel):
    champion: str
    previous: str | None
    serving: str = Field(description="The version this server process answers with now.")


class JobPublic(BaseModel):
    id: str
    done: bool
    joined: bool = Field(
        False, description="A retrain already queued or running answers this request too"
    )
    result: dict[str, Any] | None = None


# --- contributions -------------------------------------------------------------------------


class ContributionPublic(BaseModel):
    """How joining the gallery is going."""

    id: str
    status: Literal["queued", "processing", "enrolled", "refused"]
    progress: float = Field(description="0 to 1 while processing")
    display_name: str
    media: Literal["video", "photos"]
    crops: int = Field(description="Face crops kept (enrolled)")
    approved: bool = Field(description="Shown to other visitors (an admin may have to approve)")
    reason_code: str | None = Field(description="Why it was refused (a machine code)")
    reason: str | None = Field(description="Why it was refused, and how to do better")
    created_at: datetime
    updated_at: datetime


class ContributionCreated(ContributionPublic):
    status_url: str = Field(description="GET it to follow the processing")
    deletion_token: str = Field(
        description="Deletes every copy of you (DELETE /api/contributions/{id}?token=); shown"
        " once, keep it"
    )
    deletion_code: str = Field(
        description="The same, as one code to paste into the /forget page: c.<id>.<token>"
    )


# --- the admins' review queue ---------------------------------------------------------------


class ReviewDecisionCreate(_In):
    item: str = Field(
        min_length=1,
        max_length=200,
        description="The queue item's id: `<kind>:<sha256>` for a dataset photo,"
        " `<kind>:<prediction id>` for a visitor's photo",
    )
    action: Literal["keep", "relabel", "delete", "not_a_face", "label"] = Field(
        description="keep, relabel, delete or not_a_face for a dataset photo; keep, label,"
        " delete or not_a_face for a visitor's photo"
    )
    label: str | None = Field(
        None,
        max_length=255,
        description="The class (existing or new) for relabel and label; ignored otherwise",
    )


class ReviewDecisionPublic(BaseModel):
    """One decision of the audit trail."""

    id: int
    item: str = Field(description="The queue item it was made on")
    kind: str
    sha256: str | None
    prediction_id: str | None
    action: Literal["keep", "relabel", "delete", "not_a_face", "label"]
    label_before: str | None
    label_after: str | None
    score: float | None
    actor: str = Field(description="Who decided (a user, or token:<name>)")
    decided_at: datetime
    state: Literal["pending", "undone", "applied"] = Field(
        description="pending: waits for the next retrain and can be undone; applied: a"
        " retrain used it; undone: withdrawn (or replaced by a newer decision)"
    )
    undone_at: datetime | None
    undone_by: str | None
    applied_at: datetime | None
    applied_revision: int | None = Field(description="The dataset revision it was applied in")
    result: str | None = Field(description="What applying it did")


class ReviewDecisionList(BaseModel):
    data: list[ReviewDecisionPublic]
    count: int


class ReviewItemPublic(BaseModel):
    """A photo that needs an admin's eye."""

    id: str = Field(description="`<kind>:<sha256 or prediction id>`")
    kind: str = Field(description="A dataset check's kind, visitor_feedback or low_confidence")
    label: str | None = Field(description="Its class (a visitor's photo: the model's answer)")
    suggested_label: str | None
    score: float = Field(description="Higher: worse (comparable within a kind)")
    reason: str
    sha256: str | None
    prediction_id: str | None
    source: str | None = Field(description="Where a dataset photo was imported from")
    image_url: str
    pending: ReviewDecisionPublic | None = Field(description="Its decision waiting to apply")


class ReviewQueuePublic(BaseModel):
    data: list[ReviewItemPublic] = Field(description="Grouped by kind and class, worst first")
    count: int = Field(description="Items matching the filters")
    total: int = Field(description="Items in the whole queue")
    kinds: dict[str, int] = Field(description="Items per kind in the whole queue")
    classes: list[str] = Field(description="The dataset's classes")
    report_at: datetime | None = Field(description="When the dataset check last ran")
