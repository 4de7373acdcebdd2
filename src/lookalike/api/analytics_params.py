"""The filters every ``/api/analytics/...`` route takes, as query parameters (see
``lookalike.analytics.filters``)."""

from __future__ import annotations

from typing import Any

from fastapi import Query

from lookalike.analytics.filters import Filters, parse_filters
from lookalike.api.deps import StateDep
from lookalike.zones import zone

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
    state: StateDep,
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
    return parse_filters(zone(state.settings.timezone), start, end, model_version, label)
