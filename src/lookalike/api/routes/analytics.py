"""``/api/analytics/...``: the admin dashboard's numbers (admin only, GET, JSON).

Every endpoint takes the same filters (``lookalike.analytics.filters``): ``start``, ``end``
(ISO date or datetime in the ``timezone`` setting; end exclusive; default the last 30 days),
``model_version``, ``label`` (a class, or ``__none__`` for "no strong match"), and repeats them
as ``filters`` next to ``timezone``. Bad filters: 422 ``request.invalid`` listing the fields.

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
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from lookalike.analytics import export, queries
from lookalike.analytics.filters import Filters, invalid, parse_filters
from lookalike.analytics.zones import zone
from lookalike.api.auth import Admin, require_admin
from lookalike.api.deps import get_engine, get_settings
from lookalike.api.errors import ApiError

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


# ISO 8601 dates and date-times (an instant without an offset is local time, which the
# OpenAPI date-time format cannot say; its description does).
ISO_DATE_OR_TIME: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
        {"type": "string", "maxLength": 0, "description": "empty: the default"},
    ]
}


def analytics_filters(
    request: Request,
    start: str | None = Query(
        None,
        max_length=64,
        description="First day (2026-03-01) or instant (2026-03-01T08:00), in the configured"
        " time zone unless it carries an offset. Default: 30 days before `end`.",
        json_schema_extra=ISO_DATE_OR_TIME,
    ),
    end: str | None = Query(
        None,
        max_length=64,
        description="End, exclusive (same forms as `start`). Default: the end of today.",
        json_schema_extra=ISO_DATE_OR_TIME,
    ),
    model_version: str | None = Query(None, description="Only this model version's answers."),
    label: str | None = Query(
        None,
        description="Only answers of this class; `__none__`: only lookalike answers (visitors"
        " not in the gallery).",
    ),
) -> Filters:
    settings = get_settings(request)
    return parse_filters(zone(settings.timezone), start, end, model_version, label)


def _answer(request: Request, filters: Filters, work: Callable[[queries.Query], Any]) -> Any:
    with queries.snapshot(get_engine(request)) as conn:
        return work(queries.Query.open(conn, filters))


async def _json(request: Request, filters: Filters, work: Callable[[queries.Query], Any]) -> Any:
    return JSONResponse(await run_in_threadpool(_answer, request, filters, work))


@router.get("/classes", summary="Predicted class distribution, overall and per model version")
async def classes(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
) -> Any:
    """``{"total", "data": [{"label", "count", "share"}], "by_model": [{"model_version",
    "label", "count"}]}``; ``label`` null: "no strong match"."""
    return await _json(request, filters, queries.classes)


@router.get("/accuracy", summary="Model versions' test accuracy over time")
async def accuracy(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
) -> Any:
    """``{"champion", "data": [{"version", "created_at", "accuracy", "macro_f1", "decision",
    "champion", "was_champion"}], "events": [{"at", "kind", "version", "previous", "reason",
    "actor"}]}`` (dates filter ``created_at`` and ``at``; ``label`` is ignored)."""
    return await _json(request, filters, queries.accuracy)


@router.get("/volume", summary="Predictions per hour, day, week or month, per class")
async def volume(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
    bucket: Literal["hour", "day", "week", "month"] = Query(
        "day", description="Bucket size, in the configured time zone (weeks start on Monday)."
    ),
) -> Any:
    """``{"bucket", "data": [{"start": local ISO datetime, "label", "count"}]}`` (empty
    buckets left out)."""

    def work(q: queries.Query) -> Any:
        if bucket == "hour" and not queries.hourly_allowed(q):
            raise invalid(
                "bucket",
                f"hourly buckets cover at most {queries.MAX_HOURLY_DAYS} days: narrow the"
                " range or use day",
            )
        return queries.volume(q, bucket)

    return await _json(request, filters, work)


@router.get("/heatmap", summary="Predictions per weekday and hour of the day")
async def heatmap(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
) -> Any:
    """``{"weekdays": ["Mon".."Sun"], "hours": [0..23], "data": 7 x 24 counts}``, local time."""
    return await _json(request, filters, queries.heatmap)


@router.get("/latency", summary="Answer time percentiles per day or per class")
async def latency(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
    by: Literal["day", "class"] = Query("day", description="Split per local day or per class."),
) -> Any:
    """``{"by", "overall": {"count", "p50", "p95"}, "data": [{"day" | "label", "count",
    "p50", "p95"}]}``: milliseconds; the p-th percentile of n answers is the
    ceil(p*n)-th smallest (nearest rank, as PostgreSQL's percentile_disc)."""
    return await _json(request, filters, lambda q: queries.latency(q, by))


@router.get("/confidence", summary="How sure the answers are")
async def confidence(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
) -> Any:
    """``{"total", "histogram": [{"from", "to", "count"}] (10 bins of best-class probability),
    "no_strong_match_share", "no_face_share", "several_faces_share"}``; ``total`` counts every
    logged request, requests without a face included (shares are of it; null when 0)."""
    return await _json(request, filters, queries.confidence)


@router.get("/feedback", summary="Likes, dislikes and 'I look more like ...'")
async def feedback(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
) -> Any:
    """``{"data": [{"label", "likes", "dislikes"}], "confusion": [{"predicted": best class,
    "said": the class the visitor named, "count"}]}``."""
    return await _json(request, filters, queries.feedback)


@router.get("/drift", summary="Daily drift of the confidences from the model's reference")
async def drift(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
) -> Any:
    """``{"threshold", "reference_version", "reference", "data": [{"day", "n",
    "mean_match_score", "mean_probability", "score", "ks_match_score", "ks_probability",
    "over"}]}``. Embeddings are never logged (privacy), so drift is measured on the logged
    confidences: ``score`` is the larger Kolmogorov-Smirnov distance (on the histogram grid)
    of the day's match scores and best-class probabilities from the deciles the filtered
    model (default: the champion) showed on its held-out test photos; ``over``: score above
    the ``drift_threshold`` setting, a retrain is worth considering."""
    threshold = get_settings(request).drift_threshold
    return await _json(request, filters, lambda q: queries.drift(q, threshold))


# --- exports ---------------------------------------------------------------------------------


def _checked_count(request: Request, filters: Filters) -> int:
    limit = get_settings(request).export_max_rows
    count = int(_answer(request, filters, queries.export_count))
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
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
) -> StreamingResponse:
    """Columns: ``id, created_at`` (UTC ISO) ``, model_version, label, best_label,
    probability, match_score, no_strong_match, faces_found, frames_used, latency_ms, client,
    feedback, feedback_label``; oldest first."""
    await run_in_threadpool(_checked_count, request, filters)
    limit = get_settings(request).export_max_rows
    return StreamingResponse(
        export.csv_stream(get_engine(request), filters, limit),
        media_type="text/csv; charset=utf-8",
        headers=_download(export.filename(filters, "csv")),
    )


@router.get("/export.json", summary="The prediction log for the filters, as JSON")
async def export_json(
    request: Request,
    admin: Admin = Depends(require_admin),
    filters: Filters = Depends(analytics_filters),
) -> StreamingResponse:
    """``{"filters", "timezone", "count", "data": [rows with the CSV's columns]}``."""
    count = await run_in_threadpool(_checked_count, request, filters)
    limit = get_settings(request).export_max_rows
    return StreamingResponse(
        export.json_stream(get_engine(request), filters, limit, count),
        media_type="application/json",
        headers=_download(export.filename(filters, "json")),
    )
