"""The one settings object. Every field is read from ``LOOKALIKE_<NAME>`` (or a ``.env`` file).

Every field has a description; a test fails when one is missing, so ``lookalike settings``
always documents the whole surface.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lookalike.datadir import DataDir

DEV_SECRET = "dev-secret-change-me"
MIN_PRODUCTION_SECRET = 32  # characters
# The tie rule's default (setting ``tie_z``): on ORL strangers 0.4 gives 1.32 names an answer
# and a single-photo modal share of 0.80 (bench/resemblance.py); the two trade off.
DEFAULT_TIE_Z = 0.4


def parse_cron(expression: str) -> dict[str, str]:
    """A 5-field cron expression as huey's ``crontab`` keyword arguments (validated)."""
    from huey import crontab  # small, pure Python; only needed to validate here

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"expected 5 cron fields (minute hour day month day-of-week), got {len(fields)}"
            f" in {expression!r}; e.g. '0 3 */3 * *'"
        )
    parts = dict(zip(("minute", "hour", "day", "month", "day_of_week"), fields, strict=True))
    crontab(**parts, strict=True)  # ValueError names the bad field
    return parts


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOOKALIKE_", env_file=".env", extra="ignore", validate_default=True
    )

    home: Path = Field(
        Path("lookalike-data"),
        description="Data directory: imported images, embedding cache, model versions.",
    )
    backbone: str = Field(
        "face",
        description="Backbone used by `train` when none is given: face, image or test.",
    )
    seed: int = Field(0, description="Seed for splits and training, so runs are reproducible.")

    # --- image decoding limits -----------------------------------------------------------
    max_image_bytes: int = Field(
        15 * 1024 * 1024, gt=0, description="Largest accepted image file, in bytes."
    )
    max_image_pixels: int = Field(
        40_000_000,
        gt=0,
        description="Largest accepted width x height, checked from the header before decoding.",
    )
    min_image_side: int = Field(
        8, gt=0, description="Smallest accepted width or height, in pixels."
    )

    # --- face detection ----------------------------------------------------------------------
    detect_side: int = Field(
        320,
        ge=64,
        description="Images are resized so their longer side is this many pixels for detection;"
        " boxes are mapped back and the crop is taken from the full image.",
    )
    detect_retry_side: int = Field(
        800,
        ge=0,
        description="When nothing is found at detect_side, retry at this size (0 disables);"
        " finds small faces in large photos.",
    )
    detect_upscale_side: int = Field(
        960,
        ge=0,
        description="When nothing is found in a photo whose longer side is under this, retry"
        " with it upscaled to this size (0 disables): finds faces under ~40 px wide, e.g. a"
        " visitor far from the webcam.",
    )
    detect_denoise_retry: bool = Field(
        True,
        description="When still nothing is found, retry on a lightly blurred copy"
        " (finds faces in noisy, dark webcam frames).",
    )
    face_score_threshold: float = Field(
        0.6, gt=0, lt=1, description="Minimum detector score for a face."
    )
    min_face_size: int = Field(
        20,
        ge=1,
        description="Faces smaller than this (pixels, in the original image) are 'too small'.",
    )

    blur_threshold: float = Field(
        15.0,
        ge=0,
        description="Import warns when the aligned face's Laplacian variance is below this"
        " (0 disables the check).",
    )

    # --- dataset and training ---------------------------------------------------------------
    test_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of each class's images frozen into the test set."
    )
    val_fraction: float = Field(
        0.15, ge=0, lt=1, description="Share of each class's images used for validation."
    )
    min_images_per_class: int = Field(
        3,
        ge=1,
        description="Classes with fewer imported images are reported and left out of training.",
    )
    max_import_files: int = Field(
        100_000, gt=0, description="Largest number of files one import may read."
    )
    embed_workers: int = Field(
        0,
        ge=0,
        description="Threads that decode, detect and embed during an import (each with its own"
        " model copy); 0: one per CPU core, at most 4.",
    )
    top_k_per_class: int = Field(
        3, ge=1, description="Gallery head: a class scores the mean of its top-k similarities."
    )
    nearest_k: int = Field(5, ge=1, description="Nearest reference images returned per prediction.")
    flip_tta: bool = Field(
        True, description="Embed each face and its mirror image and average them (more robust)."
    )

    # --- fine-tuning (the `finetune` head: the network itself is trained; needs torch) -------
    finetune_epochs: int = Field(
        30, ge=1, description="Fine-tuning: most epochs (early stopping usually ends sooner)."
    )
    finetune_batch_size: int = Field(32, ge=1, description="Fine-tuning: images per batch.")
    finetune_lr: float = Field(
        1e-3, gt=0, description="Fine-tuning: Adam's learning rate for the new classifier."
    )
    finetune_backbone_lr_factor: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Fine-tuning: the pretrained network learns at finetune_lr times this"
        " (0 freezes it), so the random classifier does not wreck its features early on.",
    )
    finetune_dropout: float = Field(
        0.2, ge=0, lt=1, description="Fine-tuning: dropout before the classifier."
    )
    finetune_label_smoothing: float = Field(
        0.1, ge=0, lt=1, description="Fine-tuning: label smoothing of the cross-entropy."
    )
    finetune_scheduler: Literal["plateau", "cosine", "none"] = Field(
        "plateau",
        description="Fine-tuning: learning-rate schedule. plateau: halve it after an epoch"
        " without a better validation loss; cosine: anneal it to 0 over finetune_epochs.",
    )
    finetune_patience: int = Field(
        3,
        ge=1,
        description="Fine-tuning: stop after this many epochs without a better validation"
        " loss; the best epoch's weights are kept.",
    )
    finetune_augment: bool = Field(
        True,
        description="Fine-tuning: each training image gets one of a horizontal flip, a"
        " brightness or a contrast jitter, at random.",
    )
    finetune_jitter: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Fine-tuning: brightness shift and contrast factor range (1 +- this).",
    )
    finetune_init: Literal["imprint", "random"] = Field(
        "imprint",
        description="Fine-tuning: the new classifier's starting weights. imprint: each class's"
        " mean embedding under the pretrained network (it starts where a nearest-class-mean"
        " head is, so few epochs are wasted); random: PyTorch's default initialisation.",
    )
    auto_finetune: Literal["never", "gpu", "always"] = Field(
        "gpu",
        description="Whether training with head auto also fine-tunes the network, keeping it"
        " only if it wins on validation: never; gpu: only when torch sees a CUDA GPU (on a"
        " few CPU cores it takes minutes to hours: docs/benchmarks.md); always.",
    )
    auto_finetune_min_per_class: int = Field(
        1000,
        ge=1,
        description="head auto fine-tunes only when every class has at least this many"
        " training photos (with fewer, the heads on pretrained embeddings win).",
    )
    finetune_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Fine-tuning: where to train; auto: CUDA when available, else CPU."
    )

    # --- the answer: same person, lookalikes, or cannot judge ---------------------------------
    lookalikes_shown: int = Field(
        3, ge=1, le=20, description="Lookalikes named in an answer, strongest first."
    )
    tie_z: float = Field(
        DEFAULT_TIE_Z,
        ge=0,
        le=5,
        description="Two top lookalikes closer than this many times the photo-to-photo noise"
        " measured on the gallery (divided by the square root of the looks averaged) are"
        " answered as a tie ('between X and Y'). Recorded in each model at training; 0: never.",
    )
    judge_min_face_px: float = Field(
        16,
        ge=0,
        description="A face narrower than this (pixels, in the photo) cannot be judged: too small.",
    )
    judge_min_brightness: float = Field(
        10,
        ge=0,
        le=255,
        description="A face whose mean brightness (0-255) is below this cannot be judged: too"
        " dark.",
    )
    judge_min_sharpness: float = Field(
        0.0025,
        ge=0,
        description="A face whose sharpness (variance of the Laplacian over the variance of the"
        " aligned face) is below this cannot be judged: too blurred.",
    )
    visit_minutes: int = Field(
        60,
        ge=1,
        description="A visit (several photos answered together) may be continued this long"
        " after its last photo.",
    )

    # --- web service -------------------------------------------------------------------------
    database_url: str = Field(
        "",
        description="SQLAlchemy URL of the prediction log; empty: SQLite in the data dir."
        " PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    secret_key: str = Field(
        DEV_SECRET,
        description="Secret for signed upload URLs and admin session cookies. Set a long"
        " random value (32+ characters) in production.",
    )
    environment: str = Field(
        "development",
        description="'development' or 'production' (production refuses the default secret).",
    )
    upload_ttl_seconds: int = Field(
        300,
        gt=0,
        description="Signed upload URLs expire, and unused uploads are deleted, after this.",
    )
    max_request_bytes: int = Field(
        64 * 1024 * 1024,
        gt=0,
        description="Largest HTTP request body, refused before it is read.",
    )
    request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="A request whose body stalls this long is answered 408 (slow clients).",
    )
    max_photos_per_request: int = Field(
        8, ge=1, description="Most photos in one prediction request (a webcam burst)."
    )
    rate_limit_per_minute: int = Field(
        120, ge=0, description="Requests per minute per client on public endpoints (0: no limit)."
    )
    host: str = Field("127.0.0.1", description="Address `lookalike serve` listens on.")
    forwarded_allow_ips: str = Field(
        "",
        description="Proxies (comma-separated IPs or networks, '*' for any) whose"
        " X-Forwarded-For / X-Forwarded-Proto headers are trusted. Empty: none; the client"
        " address is the connection's peer (rate limits and the sign-in limit key on it).",
    )
    port: int = Field(8000, ge=1, le=65535, description="Port `lookalike serve` listens on.")

    # --- object storage (kept photos, contributions, uploads) ---------------------------------
    storage_url: str = Field(
        "",
        description="Where objects are kept: empty for the data dir's objects/ folder, or"
        " s3://bucket/prefix for S3 or an S3-compatible server (the s3 extra).",
    )
    s3_endpoint_url: str = Field(
        "", description="An S3-compatible server's URL (MinIO, ...); empty: AWS S3."
    )
    s3_region: str = Field("", description="The bucket's region; empty: the default chain's.")
    s3_access_key_id: str = Field(
        "", description="Empty: AWS's default credentials chain (environment, profile, role)."
    )
    s3_secret_access_key: str = Field("", description="With s3_access_key_id.", repr=False)
    s3_presigned_uploads: bool = Field(
        True,
        description="On S3, POST /api/uploads hands out presigned S3 PUT URLs (the photo goes"
        " straight to the bucket, which needs a CORS rule for the page's origin); false: the"
        " bytes go through this server's signed URLs, as with local storage.",
    )
    s3_public_endpoint_url: str = Field(
        "",
        description="The S3 endpoint as browsers reach it, for presigned upload URLs (when it"
        " differs from s3_endpoint_url, e.g. an internal host name); empty: s3_endpoint_url.",
    )

    # --- name generator and quote of the day ---------------------------------------------------
    names_max_count: int = Field(
        15, ge=1, le=100, description="Most names one request may ask for (the page's slider)."
    )
    names_max_length: int = Field(
        20,
        ge=2,
        le=64,
        description="Longest generated name in characters, prefix included (requests may"
        " ask for less; longer candidates are rejected and resampled).",
    )
    names_max_tries: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Candidates sampled per request at most: names of the training corpus,"
        " duplicates and over-long ones are resampled until this many were drawn.",
    )
    names_max_corpus_names: int = Field(
        200_000,
        ge=20,
        description="Most distinct names in a file given to `lookalike names train --corpus`.",
    )
    names_max_name_chars: int = Field(
        64, ge=2, description="Longest name accepted in a training file, in characters."
    )
    quote_url: str = Field(
        "",
        pattern=r"^(https?://[^\s/?#]+\S*)?$",
        description="JSON quotes API answering the quote of the day (an http or https URL);"
        " empty: the built-in public-domain quotes answer.",
    )
    quote_text_field: str = Field(
        "text",
        min_length=1,
        description="Where the quote's text is in the API's JSON: a dotted path, numbers"
        " index lists ('0.q' for a top-level list of objects with a 'q').",
    )
    quote_author_field: str = Field(
        "author",
        description="Where the author's name is in the API's JSON (dotted path like"
        " quote_text_field; empty: no author).",
    )
    quote_cache_seconds: int = Field(
        86_400,
        gt=0,
        description="A fetched quote is kept this long in the database, shared by every"
        " worker process.",
    )
    quote_retry_seconds: int = Field(
        300,
        gt=0,
        description="After the quotes API failed, it is asked again only after this long"
        " (meanwhile the last good quote, or a built-in one, answers).",
    )
    quote_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=30,
        description="Hard limit on one call to the quotes API (connect, wait and read).",
    )
    quote_max_bytes: int = Field(
        65_536, gt=0, description="Largest quotes API answer read, in bytes."
    )

    # --- dataset checks (lookalike check) ---------------------------------------------------------
    check_duplicate_similarity: float = Field(
        0.98,
        gt=0,
        le=1,
        description="Two photos at least this similar (cosine of their embeddings) are flagged"
        " as near-duplicates.",
    )
    check_outlier_z: float = Field(
        3.5,
        gt=0,
        description="A photo this many robust spreads less similar to its class than the"
        " class's typical photo is flagged as an outlier.",
    )
    check_mislabel_margin: float = Field(
        0.02,
        ge=0,
        description="A photo nearer another class's centre than its own by at least this much"
        " (cosine) is flagged, with that class suggested.",
    )
    check_imbalance_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A class with fewer photos than this share of the typical class's is"
        " flagged as underrepresented.",
    )
    check_mislabel_folds: int = Field(
        5,
        ge=2,
        le=20,
        description="Cross-validation folds for the out-of-fold probabilities that confident"
        " learning (cleanlab) judges labels by.",
    )
    check_face_score: float = Field(
        0.8,
        ge=0,
        le=1,
        description="A dataset photo whose face the detector scored below this is flagged as"
        " a doubtful face (ORL's faces score 0.91 and up; galaxies in a sky photo 0.64-0.75).",
    )
    check_blur_sharpness: float = Field(
        0.015,
        ge=0,
        description="A dataset photo whose face sharpness (see judge_min_sharpness) is below"
        " this is flagged as blurred. Sharp ORL faces measure 0.04 and up; blurred ones"
        " (Gaussian, sigma 3) 0.006 and down.",
    )
    check_dark_brightness: float = Field(
        40,
        ge=0,
        le=255,
        description="A dataset photo whose face's mean brightness (0-255) is below this is"
        " flagged as too dark.",
    )
    check_small_face_px: float = Field(
        32,
        ge=0,
        description="A dataset photo whose face is narrower than this (pixels) is flagged as"
        " too small to learn from.",
    )

    # --- the admins' review queue (/admin/review) -------------------------------------------------
    review_feedback_max: int = Field(
        200,
        ge=0,
        le=10_000,
        description="Most visitor photos with an 'I look more like X' answer in the review"
        " queue at once (newest first; kept photos only, with consent).",
    )
    review_low_confidence_below: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A kept visitor photo whose best class had a probability under this is a"
        " low-confidence prediction, a candidate for labelling in the review queue.",
    )
    review_low_confidence_rate: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of the low-confidence kept photos sampled into the review queue (a"
        " stable sample: drawn from each prediction's id); 0 turns the sampling off.",
    )
    review_low_confidence_max: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Most sampled low-confidence photos in the review queue at once (newest"
        " first).",
    )

    # --- joining the gallery (a short face video or a few photos) --------------------------------
    video_max_bytes: int = Field(
        60 * 1024 * 1024,
        ge=1024,
        description="Largest contribution video accepted, in bytes (checked before decoding).",
    )
    video_min_seconds: float = Field(
        2.0,
        ge=0,
        description="Shortest contribution video, in seconds (2 s of a face turning already"
        " gives enough distinct views).",
    )
    video_max_seconds: float = Field(
        10.0, gt=0, description="Longest contribution video, in seconds (declared or decoded)."
    )
    video_max_pixels: int = Field(
        1920 * 1080,
        ge=64 * 64,
        description="Largest frame of a contribution video (width x height), checked from the"
        " stream's header before any frame is decoded.",
    )
    video_max_frames: int = Field(
        1200,
        ge=1,
        description="Most frames a contribution video may have (declared or decoded): 10 s at"
        " 120 fps.",
    )
    video_decode_seconds: float = Field(
        10.0,
        gt=0,
        description="Decoding a contribution video stops (and refuses it) after this long.",
    )
    video_sample_fps: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Frames sampled per second of a contribution video to look for faces.",
    )

    contribution_min_crops: int = Field(
        5,
        ge=1,
        description="A contribution is refused unless at least this many good, distinct face"
        " crops remain (one face, sharp, lit, large enough, not a near-duplicate).",
    )
    contribution_max_crops: int = Field(
        12,
        ge=1,
        description="At most this many crops are kept per contributor, chosen to differ as much"
        " as possible (the head turning gives varied views).",
    )
    contribution_min_photos: int = Field(
        3, ge=1, description="Fewest photos in a photos-only contribution."
    )
    contribution_max_photos: int = Field(
        20, ge=1, description="Most photos in a photos-only contribution."
    )
    contribution_duplicate_similarity: float = Field(
        0.97,
        gt=0,
        le=1,
        description="Two crops of a contribution this similar (cosine) are one view: the"
        " later is dropped.",
    )
    contribution_same_person_similarity: float = Field(
        0.35,
        ge=-1,
        le=1,
        description="The crops of a contribution split into two groups whose mean faces are"
        " less similar (cosine) than this are two people: it is refused.",
    )

    contributions_per_hour: int = Field(
        10,
        ge=0,
        description="Contributions (joining the gallery) per client address and hour (0: no"
        " limit beyond rate_limit_per_minute).",
    )
    retention_days: int = Field(
        365,
        ge=0,
        description="Contributions and photos kept with consent are deleted this many days"
        " after they arrived (a daily job; 0: kept until their owners delete them).",
    )
    gallery_index_min_size: int = Field(
        50_000,
        ge=0,
        description="From this many reference photos on, a serving model's gallery is searched"
        " with a faiss IVF index (the index extra): a photo's nearest references and the classes"
        " they belong to are scored exactly, the others bounded; below it (and with 0) every"
        " reference is compared.",
    )
    enrolled_index_min_size: int = Field(
        50_000,
        ge=0,
        description="From this many enrolled contributors' crops on, each app process searches"
        " them with a faiss IVF index (the index extra) instead of comparing every crop; 0:"
        " always exact.",
    )
    contributions_need_approval: bool = Field(
        False,
        description="New contributors are matched and shown to other visitors only once an"
        " admin approved them.",
    )

    # --- admin access ----------------------------------------------------------------------------
    admin_session_hours: float = Field(
        12.0,
        gt=0,
        le=24 * 30,
        description="An admin sign-in lasts this many hours (the session cookie expires; no"
        " sliding renewal).",
    )
    admin_min_password_length: int = Field(
        12, ge=8, le=1024, description="Shortest admin password accepted, in characters."
    )
    login_attempts_per_minute: int = Field(
        10,
        ge=0,
        description="Sign-in attempts per minute per client address on /admin/login (0: no limit).",
    )
    admin_secure_cookies: bool = Field(
        False,
        description="Mark the admin cookies Secure even on plain-http requests (a TLS proxy"
        " uvicorn does not trust); over https they are always Secure.",
    )

    # Retraining and the promotion gate (lookalike.retrain, lookalike.jobs).
    retrain_cron: str = Field(
        "0 3 */3 * *",
        description="When the scheduled retrain runs: a 5-field cron expression (minute hour"
        " day-of-month month day-of-week, server local time). Default: 03:00 every 3rd day.",
    )
    retrain_min_new_images: int = Field(
        50,
        ge=0,
        description="Also retrain as soon as this many labelled images arrived since the"
        " champion was trained (checked every retrain_check_minutes); 0 turns this off.",
    )
    retrain_check_minutes: int = Field(
        10, ge=1, le=1440, description="How often the job worker looks for new images."
    )
    promotion_alpha: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="Significance level of the McNemar test a challenger must pass to replace"
        " a champion with the same classes.",
    )
    promotion_max_recall_drop: float = Field(
        0.10,
        ge=0.0,
        le=1.0,
        description="A challenger is refused when any class's recall drops by more than this.",
    )
    promotion_new_class_floor: float = Field(
        0.80,
        ge=0.0,
        le=1.0,
        description="A challenger that adds classes must recognise them (mean recall on their"
        " test photos) at least this well.",
    )
    redis_url: str = Field(
        "",
        description="Redis shared by several app processes and workers"
        " (redis://host:6379/0): the job queue and the rate limits. Empty: a SQLite queue in"
        " the data dir and limits kept in each process.",
    )
    jobs_in_process: bool = Field(
        True,
        description="`lookalike serve` runs the job worker (schedules, retrains) in its own"
        " process; turn off when a separate `lookalike worker` runs.",
    )

    # Admin dashboard analytics (lookalike.analytics, /api/analytics/...).
    timezone: str = Field(
        "UTC",
        description="IANA time zone (e.g. Europe/Paris) in which the dashboard's dates, hours,"
        " days, weeks and months are counted.",
    )
    drift_threshold: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="A day's drift score (Kolmogorov-Smirnov distance of its confidences from"
        " the model's held-out reference, 0-1) above this is flagged: consider retraining.",
    )
    export_max_rows: int = Field(
        1_000_000,
        ge=1,
        description="Most prediction log rows one CSV / JSON export may hold; larger"
        " selections are refused (narrow the dates or filter on a version or class).",
    )

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from lookalike.zones import zone  # the tzdata package, not the OS's files

        zone(value)  # ValueError names the expected form
        return value

    @property
    def resolved_embed_workers(self) -> int:
        return self.embed_workers or max(1, min(4, os.cpu_count() or 1))

    def signing_key(self, purpose: str) -> bytes:
        """A key per purpose (admin sessions, visit tokens, ...), derived from the one secret:
        a signature made for one purpose never verifies for another."""
        return hmac.new(
            self.secret_key.encode(), f"lookalike/{purpose}".encode(), hashlib.sha256
        ).digest()

    @property
    def data_dir(self) -> DataDir:
        """The layout of ``home``: every path under it (cheap to build; a property, not a
        cached one, so a copy made with another ``home`` never sees the old layout)."""
        return DataDir(self.home)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.database.resolve()}"

    @field_validator("retrain_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        parse_cron(value)
        return value

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment == "production" and (
            self.secret_key == DEV_SECRET or len(self.secret_key) < MIN_PRODUCTION_SECRET
        ):
            raise ValueError(
                "LOOKALIKE_SECRET_KEY must be set to a long random value in production"
                f" (at least {MIN_PRODUCTION_SECRET} characters, e.g. the output of"
                " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once). Tests build their own ``Settings(...)``."""
    return Settings()
