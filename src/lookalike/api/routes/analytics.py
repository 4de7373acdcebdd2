"""``/api/analytics/...``: the admin dashboard's numbers (admin only, GET, JSON).

Every endpoint takes the same filters (``lookalike.analytics.filters``): ``start``, ``end``
(ISO date or datetime in the ``timezone`` setting; end exclusive; default the last 30 days),
``model_version``, ``label`` (a class, or ``__none__`` for "no strong match"), and repeats them
as ``filters`` next to ``timezone``. Bad filters: 422 ``request.invalid`` listing the fields.
The answers' models are in ``lookalike.api.analytics_schemas``.

* ``/classes`` — predicted class distribution, overall and per model version;
* ``/accuracy`` — each model version's test accuracy and macro-F1, promotions and rollbacks;
* ``/volume?bucket=hour|day|week|month`` — predictions per local bucket and class;
* ``/heatmap`` — predictions per local weekday x hour;
* ``/latency?by=day|class`` — p50 / p95 answer time (ms, nearest rank);
* ``/confidence`` — best-class probability histogram, no strong match / no face / several
  faces shares;
* ``/feedback`` — likes and dislikes per class, "I look more like ..." confusion;
* ``/drift`` — daily distance of the confidences from the model's held-out reference;
* ``/export.csv``, ``/export.json`` — the log rows themselves, streamed (at most
  ``export_max_rows``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from lookalike.analytics import export, queries
from lookalike.analytics.filters import Filters, invalid
from lookalike.api import analytics_schemas as s
from lookalike.api.analytics_params import analytics_filters, known_parameters_only
from lookalike.api.auth import require_admin
from lookalike.api.deps import StateDep
from lookalike.api.errors import ApiError

router = APIRouter(
    prefix="/api/analytics",
    tags=["analytics"],
    dependencies=[Depends(require_admin), Depends(known_parameters_only)],
)


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Work = Callable[[queries.Query], dict[str, Any]]


def _answer(state: StateDep, filters: Filters, work: Callable[[queries.Query], T]) -> T:
    with queries.snapshot(state.engine) as conn:
        return work(queries.Query.open(conn, filters))


def _model(model: type[M], state: StateDep, filters: Filters, work: Work) -> M:
    return model.model_validate(_answer(state, filters, work))


async def _json(model: type[M], state: StateDep, filters: Filters, work: Work) -> M:
    """``work``'s answer as ``model``, both in the threadpool (the queries block)."""
    return await run_in_threadpool(_model, model, state, filters, work)


@router.get(
    "/classes",
    summary="Predicted class distribution, overall and per model version",
    response_model=s.AnalyticsClasses,
)
async def classes(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
) -> s.AnalyticsClasses:
    """Counts and shares per class, and per model version and class; ``label`` null: "no
    strong match"."""
    return await _json(s.AnalyticsClasses, state, filters, queries.classes)


@router.get(
    "/accuracy",
    summary="Model versions' test accuracy over time",
    response_model=s.AnalyticsAccuracy,
)
async def accuracy(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
) -> s.AnalyticsAccuracy:
    """Each model version's test accuracy and macro-F1, promotions and rollbacks (dates
    filter ``created_at`` and ``at``; ``label`` is ignored)."""
    return await _json(s.AnalyticsAccuracy, state, filters, queries.accuracy)


@router.get(
    "/volume",
    summary="Predictions per hour, day, week or month, per class",
    response_model=s.AnalyticsVolume,
)
async def volume(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
    bucket: Literal["hour", "day", "week", "month"] = Query(
        "day", description="Bucket size, in the configured time zone (weeks start on Monday)."
    ),
) -> s.AnalyticsVolume:
    """Predictions per local bucket (``start``: local ISO datetime) and class; empty
    buckets left out."""

    def work(q: queries.Query) -> dict[str, Any]:
        if bucket == "hour" and not queries.hourly_allowed(q):
            raise invalid(
                "bucket",
                f"hourly buckets cover at most {queries.MAX_HOURLY_DAYS} days: narrow the"
                " range or use day",
            )
        return queries.volume(q, bucket)

    return await _json(s.AnalyticsVolume, state, filters, work)


@router.get(
    "/heatmap",
    summary="Predictions per weekday and hour of the day",
    response_model=s.AnalyticsHeatmap,
)
async def heatmap(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
) -> s.AnalyticsHeatmap:
    """``data``: 7 (Mon..Sun) x 24 (hours) counts, local time."""
    return await _json(s.AnalyticsHeatmap, state, filters, queries.heatmap)


@router.get(
    "/latency",
    summary="Answer time percentiles per day or per class",
    response_model=s.AnalyticsLatency,
)
async def latency(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
    by: Literal["day", "class"] = Query("day", description="Split per local day or per class."),
) -> s.AnalyticsLatency:
    """p50 / p95 in milliseconds; the p-th percentile of n answers is the ceil(p*n)-th
    smallest (nearest rank, as PostgreSQL's percentile_disc)."""
    return await _json(s.AnalyticsLatency, state, filters, lambda q: queries.latency(q, by))


@router.get("/confidence", summary="How sure the answers are", response_model=s.AnalyticsConfidence)
async def confidence(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
) -> s.AnalyticsConfidence:
    """10 bins of best-class probability; ``total`` counts every logged request, requests
    without a face included (shares are of it; null when 0)."""
    return await _json(s.AnalyticsConfidence, state, filters, queries.confidence)


@router.get(
    "/feedback",
    summary="Likes, dislikes and 'I look more like ...'",
    response_model=s.AnalyticsFeedback,
)
async def feedback(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
) -> s.AnalyticsFeedback:
    """Likes and dislikes per class; ``confusion``: the best class against the class the
    visitor named."""
    return await _json(s.AnalyticsFeedback, state, filters, queries.feedback)


@router.get(
    "/drift",
    summary="Daily drift of the confidences from the model's reference",
    response_model=s.AnalyticsDrift,
)
async def drift(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
) -> s.AnalyticsDrift:
    """Embeddings are never logged (privacy), so drift is measured on the logged
    confidences: ``score`` is the larger Kolmogorov-Smirnov distance (on the histogram grid)
    of the day's match scores and best-class probabilities from the deciles the filtered
    model (default: the champion) showed on its held-out test photos; ``over``: score above
    the ``drift_threshold`` setting, a retrain is worth considering."""
    threshold = state.settings.drift_threshold
    return await _json(s.AnalyticsDrift, state, filters, lambda q: queries.drift(q, threshold))


# --- exports ---------------------------------------------------------------------------------


def _checked_count(state: StateDep, filters: Filters) -> int:
    limit = state.settings.export_max_rows
    count = int(_answer(state, filters, queries.export_count))
    if count > limit:
        raise ApiError(
            f"The filters select {count} predictions; an export holds at most {limit}"
            " (setting export_max_rows). Narrow the date range or filter on a model version"
            " or class.",
            code="analytics.export_too_large",
            status=422,
            details={"rows": count, "max_rows": limit},
        )
    return count


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get(
    "/export.csv",
    summary="The prediction log for the filters, as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def export_csv(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
) -> StreamingResponse:
    """Columns: ``id, created_at`` (UTC ISO) ``, model_version, label, best_label,
    probability, match_score, no_strong_match, faces_found, frames_used, latency_ms, client,
    feedback, feedback_label``; oldest first."""
    await run_in_threadpool(_checked_count, state, filters)
    limit = state.settings.export_max_rows
    return StreamingResponse(
        export.csv_stream(state.engine, filters, limit),
        media_type="text/csv; charset=utf-8",
        headers=_download(export.filename(filters, "csv")),
    )


@router.get("/export.json", summary="The prediction log for the filters, as JSON")
async def export_json(
    state: StateDep,
    filters: Filters = Depends(analytics_filters),
) -> StreamingResponse:
    """``{"filters", "timezone", "count", "data": [rows with the CSV's columns]}``."""
    count = await run_in_threadpool(_checked_count, state, filters)
    limit = state.settings.export_max_rows
    return StreamingResponse(
        export.json_stream(state.engine, filters, limit, count),
        media_type="application/json",
        headers=_download(export.filename(filters, "json")),
    )
