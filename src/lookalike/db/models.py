"""The service's tables (SQLAlchemy 2 typed ORM): the prediction log, the signed-upload
ledger, the model registry, admin accounts and tokens, and a small shared cache.

Portable across SQLite and PostgreSQL: JSON is ``sqlalchemy.JSON`` and every timestamp is a
:class:`UTCDateTime`, which refuses naive datetimes and always hands back timezone-aware UTC
datetimes (SQLite stores no offset; PostgreSQL answers in the session's time zone).

The schema itself is created by the Alembic migrations in ``lookalike/db/migrations``; these
classes must stay in step with them (``tests/test_db.py`` compares the two).
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint/index names, so later migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CLIENTS = ("web", "api")
FEEDBACKS = ("like", "dislike")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every timestamp column holds)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A random prediction id: uuid4 as 32 hex characters."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only takes aware datetimes and returns aware UTC ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: store timezone-aware datetimes"
                " (datetime.now(UTC))"
            )
        value = value.astimezone(UTC)
        # SQLite keeps no offset: store the UTC wall time and re-attach UTC when reading.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --- bins of the analytics' histograms (part of the schema: see the prediction_hours table) ---

# Best-class probability: [0, 0.1), [0.1, 0.2), ..., [0.9, 1].
PROBABILITY_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Match score: (..., 0.05), [0.05, 0.1), ..., [0.95, ...).
MATCH_SCORE_EDGES = tuple(round(0.05 * i, 2) for i in range(1, 20))
# Latency in milliseconds: (..., 1), [1, 2), ..., [10, 12), ... [10000, ...): fine where answers
# usually fall (2 ms steps from 10 to 60 ms), so a bin holds few of a day's answers.
LATENCY_EDGES_MS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 22,
    24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54,
    56, 58, 60, 65, 70, 75, 80, 85, 90, 95, 100, 120, 140, 160, 180, 200,
    250, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000,
)  # fmt: skip


def latency_bin(latency_ms: float) -> int:
    """The bin of ``LATENCY_EDGES_MS`` holding ``latency_ms``: i with edge[i-1] <= ms < edge[i]."""
    return bisect_right(LATENCY_EDGES_MS, latency_ms)


def _latency_bin(context: Any) -> int:
    return latency_bin(float(context.get_current_parameters()["latency_ms"]))


def _outcome(context: Any) -> str:
    params = context.get_current_parameters()
    if params.get("faces_found") == 0:
        return "no_face"
    return "no_strong_match" if params.get("no_strong_match") else "match"


class PredictionRecord(Base):
    """One prediction request: answered, or refused because no face was found."""

    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint("client IN ('web', 'api')", name="client"),
        CheckConstraint("feedback IS NULL OR feedback IN ('like', 'dislike')", name="feedback"),
        CheckConstraint("outcome IN ('match', 'no_strong_match', 'no_face')", name="outcome"),
        # The analytics' indexes (lookalike.analytics): latency percentiles per day, overall
        # and per class, one class's rows in time order (covering its confidences), exports
        # of one model version, the "I look more like ..." confusion.
        Index(
            "ix_predictions_latency_bin",
            "latency_bin",
            "created_at",
            "latency_ms",
            "outcome",
            "model_version",
            "label",
        ),
        Index(
            "ix_predictions_latency",
            "latency_ms",
            "created_at",
            "outcome",
            "model_version",
            "label",
        ),
        Index(
            "ix_predictions_label_latency",
            "label",
            "outcome",
            "latency_ms",
            "created_at",
            "model_version",
        ),
        Index(
            "ix_predictions_label_created_at",
            "label",
            "outcome",
            "created_at",
            "latency_ms",
            "model_version",
            "probability",
            "match_score",
            "faces_found",
        ),
        Index("ix_predictions_model_version_created_at", "model_version", "created_at"),
        Index(
            "ix_predictions_feedback",
            "feedback_label",
            "created_at",
            "best_label",
            "model_version",
            "label",
            "outcome",
            sqlite_where=text("feedback_label IS NOT NULL"),
            postgresql_where=text("feedback_label IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True, default=utcnow)
    model_version: Mapped[str] = mapped_column(String(255))
    # None when the best match is too weak ("no strong match") and when no face was found;
    # best_label, probability and match_score are set whenever a face was found.
    label: Mapped[str | None] = mapped_column(String(255), index=True)
    best_label: Mapped[str | None] = mapped_column(String(255))
    probability: Mapped[float | None] = mapped_column(Float)
    # [{"label": str, "probability": float}, ...] for every class of the model ([]: no face).
    probabilities: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    match_score: Mapped[float | None] = mapped_column(Float)
    no_strong_match: Mapped[bool] = mapped_column(Boolean, default=False)
    # "match" | "no_strong_match" | "no_face" (a request where no face was found is logged
    # too); derived from faces_found and no_strong_match when not given.
    outcome: Mapped[str] = mapped_column(String(16), default=_outcome, server_default="match")
    faces_found: Mapped[int] = mapped_column(Integer)
    face_index: Mapped[int | None] = mapped_column(Integer)
    frames_used: Mapped[int] = mapped_column(Integer, default=1)
    latency_ms: Mapped[float] = mapped_column(Float)
    # latency_bin(latency_ms), filled in when not given: the analytics' latency histogram.
    latency_bin: Mapped[int] = mapped_column(SmallInteger, default=_latency_bin)
    client: Mapped[str] = mapped_column(String(16), default="api")
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set only with consent: the object-store key of the kept photo.
    storage_key: Mapped[str | None] = mapped_column(String(255))
    # sha256 hex of the deletion token; the token itself is shown once and never stored.
    deletion_token_hash: Mapped[str | None] = mapped_column(String(64))
    feedback: Mapped[str | None] = mapped_column(String(16))
    feedback_label: Mapped[str | None] = mapped_column(String(255))
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        label, at = self.label, self.created_at
        return f"PredictionRecord(id={self.id!r}, label={label!r}, created_at={at!r})"


class Upload(Base):
    """A signed upload URL handed out by ``POST /api/uploads`` and its lifecycle."""

    __tablename__ = "uploads"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    content_type: Mapped[str] = mapped_column(String(100))
    max_bytes: Mapped[int] = mapped_column(Integer)
    size: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"Upload(key={self.key!r}, expires_at={self.expires_at!r})"


CONTRIBUTION_STATUSES = ("queued", "processing", "enrolled", "refused")


class Contribution(Base):
    """A visitor joining the gallery from a short face video or a few photos, with consent.

    The sources and the chosen face crops live in the object store (``contributions/<id>/``);
    the crops' embeddings live here, so the contributor is matchable as soon as processing
    ends. Deleting a contribution removes all of it (``lookalike.contributions``)."""

    __tablename__ = "contributions"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'processing', 'enrolled', 'refused')", name="status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    display_name: Mapped[str] = mapped_column(String(64))
    media: Mapped[str] = mapped_column(String(8))  # "video" or "photos"
    sources: Mapped[list[str]] = mapped_column(JSON)  # object store keys
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    crops: Mapped[int] = mapped_column(Integer, default=0)
    backbone_key: Mapped[str | None] = mapped_column(String(255))
    embeddings: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32, crops x dim
    approved: Mapped[bool] = mapped_column(Boolean, default=True)
    deletion_token_hash: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"Contribution(id={self.id!r}, status={self.status!r})"


class ModelVersion(Base):
    """One trained model (an image/face model or a name generator) and what it was made of.

    The artifact itself lives on disk (``artifact``, relative to the data dir); this row is
    written only once the artifact is complete, so every registered version can be loaded.
    """

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # "lookalike" | "names"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))  # "cli train", "retrain (schedule)"
    artifact: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(64))
    backbone: Mapped[str | None] = mapped_column(String(255))
    head: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    dataset_revision: Mapped[int | None] = mapped_column(Integer)
    test_version: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # None until the promotion gate ran: "promoted" or "refused".
    decision: Mapped[str | None] = mapped_column(String(16))

    def __repr__(self) -> str:
        return f"ModelVersion(version={self.version!r}, kind={self.kind!r})"


class ModelAlias(Base):
    """``champion`` (answers requests) and ``challenger`` (the latest candidate) per kind."""

    __tablename__ = "model_aliases"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelEvent(Base):
    """The registry's history: registrations, gate decisions, promotions and rollbacks."""

    __tablename__ = "model_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # register | decision | promote | rollback
    model_kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"), index=True)
    previous: Mapped[str | None] = mapped_column(String(32))  # champion before the event
    promoted: Mapped[bool | None] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(255), default="")


class AdminUser(Base):
    """An operator who may sign in to the admin pages (password hashed with argon2)."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AdminToken(Base):
    """An admin API token for automation; only its SHA-256 is stored, revocable."""

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CacheEntry(Base):
    """A small value shared by every worker process (e.g. the quote of the day)."""

    __tablename__ = "cache_entries"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- the analytics' rollups (kept in step with predictions by database triggers) ------------------
#
# prediction_hours: one row per UTC hour (hours since 1970-01-01T00:00Z), model version and
# outcome: counts, sums and histograms. prediction_hour_labels: the same keys and the class
# ('' for none): counts and feedback. prediction_day_labels: per UTC day (days since the epoch),
# version, outcome and class: counts, feedback and the latency histogram. Triggers on
# ``predictions`` (migration 0003) add each inserted row, move updated ones and subtract deleted
# ones in the same transaction, whoever writes. See lookalike.analytics.


def _count(name: str) -> Column[int]:
    return Column(name, Integer, nullable=False, server_default="0")


def _histogram(prefix: str, edges: tuple[float, ...]) -> list[Column[int]]:
    return [_count(f"{prefix}{i}") for i in range(len(edges) + 1)]


prediction_hours = Table(
    "prediction_hours",
    Base.metadata,
    Column("hour", Integer, primary_key=True, autoincrement=False),
    Column("model_version", String(255), primary_key=True),
    Column("outcome", String(16), primary_key=True),
    _count("n"),
    _count("several_faces"),
    Column("sum_probability", Float, nullable=False, server_default="0"),
    Column("sum_match_score", Float, nullable=False, server_default="0"),
    *_histogram("p", PROBABILITY_EDGES),
    *_histogram("m", MATCH_SCORE_EDGES),
    *_histogram("l", LATENCY_EDGES_MS),
    sqlite_with_rowid=False,
    info={"derived": True},  # kept by the predictions' triggers: a backup leaves it out
)


def _label_rollup(name: str, period: str, *more: Column[int]) -> Table:
    """Counts and feedback per period, model version, outcome and class."""
    return Table(
        name,
        Base.metadata,
        Column(period, Integer, primary_key=True, autoincrement=False),
        Column("model_version", String(255), primary_key=True),
        Column("outcome", String(16), primary_key=True),
        Column("label", String(255), primary_key=True),
        _count("n"),
        _count("likes"),
        _count("dislikes"),
        *more,
        sqlite_with_rowid=False,
        info={"derived": True},
    )


prediction_hour_labels = _label_rollup("prediction_hour_labels", "hour")
prediction_day_labels = _label_rollup(
    "prediction_day_labels", "day", *_histogram("l", LATENCY_EDGES_MS)
)


REVIEW_ACTIONS = ("keep", "relabel", "delete", "not_a_face", "label")


class ReviewDecision(Base):
    """One admin decision on an item of the review queue: a flagged dataset photo (``sha256``)
    or a visitor's kept photo (``prediction_id``), and what became of it.

    The audit trail: a row is never deleted and its decision never rewritten. An undo (or a
    newer decision on the same item) stamps ``undone_*``; the retrain that applies it stamps
    ``applied_*``, after which it can no longer be undone (``lookalike.data.decisions``)."""

    __tablename__ = "review_decisions"
    __table_args__ = (
        CheckConstraint(
            "action IN ('keep', 'relabel', 'delete', 'not_a_face', 'label')", name="action"
        ),
        CheckConstraint(
            "(sha256 IS NOT NULL AND prediction_id IS NULL)"
            " OR (sha256 IS NULL AND prediction_id IS NOT NULL)",
            name="target",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # the flag's kind, or a visitor photo's
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    prediction_id: Mapped[str | None] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(16))
    label_before: Mapped[str | None] = mapped_column(String(255))
    label_after: Mapped[str | None] = mapped_column(String(255))
    score: Mapped[float | None] = mapped_column(Float)  # the flag's score when decided
    actor: Mapped[str] = mapped_column(String(255))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    undone_by: Mapped[str | None] = mapped_column(String(255))
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The dataset catalog's revision once applied: the first model version trained on a
    # revision at least this one (model_versions.dataset_revision) learnt from it.
    applied_revision: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str | None] = mapped_column(Text)  # what applying it did, in words

    def __repr__(self) -> str:
        return f"ReviewDecision(id={self.id!r}, action={self.action!r}, kind={self.kind!r})"
