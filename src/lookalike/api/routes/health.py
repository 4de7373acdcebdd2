"""``GET /api/health``: is there a model, does the database answer."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from sqlalchemy import Engine, text

from lookalike.api.deps import get_engine, get_predictor
from lookalike.api.schemas import HealthPublic
from lookalike.errors import LookalikeError
from lookalike.inference import Predictor

log = logging.getLogger("lookalike.api")

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("", response_model=HealthPublic, summary="Service health")
def health(
    predictor: Predictor = Depends(get_predictor), engine: Engine = Depends(get_engine)
) -> HealthPublic:
    try:
        version: str | None = predictor.load().info.version
    except LookalikeError:
        version = None
    champion: str | None = None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
        champion = predictor.wanted_version()
    except Exception as exc:
        log.warning("health: database check failed: %s", exc)
        database = "error"
    # Only the champion's own failure matters: one rolled back from is history.
    errors = {v: why for v, (_, why) in predictor.failed.items() if v == champion}
    ok = version is not None and database == "ok" and not errors
    return HealthPublic(
        status="ok" if ok else "degraded",
        model=version,
        champion=champion,
        model_errors=errors,
        database=database,
    )
