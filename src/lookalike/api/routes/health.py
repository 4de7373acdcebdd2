"""``GET /api/health``: is there a model, does the database answer."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from lookalike.api.deps import EngineDep, PredictorDep
from lookalike.api.errors import DATABASE_RETRY_SECONDS, error_response
from lookalike.api.schemas import ErrorPublic, HealthPublic
from lookalike.errors import LookalikeError

log = logging.getLogger("lookalike.api")

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get(
    "",
    response_model=HealthPublic,
    summary="Service health",
    responses={503: {"model": ErrorPublic, "description": "The database cannot be reached"}},
)
def health(predictor: PredictorDep, engine: EngineDep) -> HealthPublic | JSONResponse:
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
    answer = HealthPublic(
        status="ok" if ok else "degraded",
        model=version,
        champion=champion,
        model_errors=errors,
        database=database,
    )
    if database != "ok":  # nothing can be answered and recorded: load balancers look elsewhere
        return error_response(
            503,
            "database.unavailable",
            "The database cannot be reached; predictions are refused until it is back.",
            answer.model_dump(),
            headers={"Retry-After": str(DATABASE_RETRY_SECONDS)},
        )
    return answer
