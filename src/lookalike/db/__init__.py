"""The service's database: prediction log, uploads, model registry, admin accounts, cache
(SQLAlchemy 2, Alembic)."""

from lookalike.db.engine import make_engine, normalize_url, session_factory
from lookalike.db.migrate import current_revision, head_revision, init_db
from lookalike.db.models import (
    AdminToken,
    AdminUser,
    Base,
    CacheEntry,
    Contribution,
    ModelAlias,
    ModelEvent,
    ModelVersion,
    PredictionRecord,
    Upload,
    UTCDateTime,
    utcnow,
)

__all__ = [
    "AdminToken",
    "AdminUser",
    "Base",
    "CacheEntry",
    "Contribution",
    "ModelAlias",
    "ModelEvent",
    "ModelVersion",
    "PredictionRecord",
    "UTCDateTime",
    "Upload",
    "current_revision",
    "head_revision",
    "init_db",
    "make_engine",
    "normalize_url",
    "session_factory",
    "utcnow",
]
