"""The web service's database: prediction log + signed uploads (SQLAlchemy 2, Alembic)."""

from lookalike.db.engine import make_engine, normalize_url, session_factory
from lookalike.db.migrate import current_revision, head_revision, init_db
from lookalike.db.models import Base, Prediction, Upload, UTCDateTime, utcnow

__all__ = [
    "Base",
    "Prediction",
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
