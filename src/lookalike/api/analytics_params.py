"""The filters every ``/api/analytics/...`` route takes, as query parameters (see
``lookalike.analytics.filters``)."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from fastapi.dependencies.models import Dependant

from lookalike.analytics.filters import Filters, parse_filters
from lookalike.api.deps import StateDep
from lookalike.errors import InvalidInput
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


def _declared(dependant: Dependant) -> frozenset[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return frozenset(names)


def _route_parameters(route: Any) -> frozenset[str]:
    """Kept on the route itself (routes are not hashable; an id could be reused by another
    app's route); a race computes it twice, harmlessly."""
    names: frozenset[str] | None = getattr(route, "lookalike_query_names", None)
    if names is None:
        names = _declared(route.dependant)
        route.lookalike_query_names = names
    return names


def known_parameters_only(request: Request) -> None:
    """A parameter the route does not take is refused, not silently ignored: a misspelt
    filter would otherwise show unfiltered figures as if they were filtered."""
    route = request.scope.get("route")
    if getattr(route, "dependant", None) is None:
        return
    allowed = _route_parameters(route)
    unknown = sorted(k for k in request.query_params if k not in allowed)
    if unknown:
        raise InvalidInput(
            f"Unknown query parameter(s): {', '.join(repr(k) for k in unknown)[:200]}."
            f" This endpoint takes: {', '.join(sorted(allowed))}.",
            code="request.unknown_parameter",
            status=422,
            details={"unknown": [k[:64] for k in unknown[:10]], "allowed": sorted(allowed)},
        )
