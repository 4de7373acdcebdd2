"""The error answers every API operation can give, written into the OpenAPI schema.

Every non-2xx answer has one shape (``ErrorPublic``). Which statuses an operation can give
follows from what it is: a request body can be refused as too large (413), slow (408) or
malformed (400); a path parameter can name nothing (404); admin operations refuse strangers
(401, 403); rate-limited ones answer 429; anything can meet an unreachable database (503) or
a bug (500). The operation-specific ones are listed in ``EXTRA``. ``tests/api/test_openapi.py``
runs schemathesis with every check against the real app to keep this true.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lookalike.api.auth import require_admin
from lookalike.api.deps import rate_limit
from lookalike.api.schemas import ErrorPublic, PredictionFromUpload
from lookalike.config import Settings

DESCRIPTIONS = {
    400: "The request is malformed (the message says what was expected)",
    401: "Not signed in as an admin (session cookie or Bearer token)",
    403: "Refused: a missing or wrong token (CSRF, deletion, feedback, upload signature)",
    404: "Nothing by that name",
    405: "Method not allowed",
    408: "The request body stalled",
    409: "Conflicts with the current state (e.g. an upload already used)",
    410: "Expired",
    413: "Too large (request body, photo bytes or pixels, number of photos)",
    415: "Unsupported content type or image format",
    422: "Invalid input, or a photo that cannot be judged (no face, too small, dark or blurred)",
    429: "Too many requests from this client; see Retry-After",
    500: "A bug on our side (logged)",
    503: "No model yet, or the database is unreachable; see Retry-After",
}

# (method, path) -> statuses beyond what ``_statuses`` infers.
EXTRA: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/predictions"): {403, 404, 409, 410, 415},
    ("DELETE", "/api/predictions/{prediction_id}"): {403},
    ("POST", "/api/predictions/{prediction_id}/feedback"): {403},
    ("PUT", "/api/uploads/{key}"): {403, 409, 410, 415},
    ("POST", "/api/uploads"): {415},
    ("POST", "/api/contributions"): {415},
    ("DELETE", "/api/contributions/{contribution_id}"): {403},
    ("POST", "/api/models/{version}/promote"): {409},
    ("POST", "/api/models/rollback"): {404, 409},
}


def _calls(dependant: Dependant) -> Iterable[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _statuses(route: APIRoute) -> set[int]:
    statuses = {422, 500, 503}
    methods = route.methods or set()
    if methods & {"POST", "PUT", "PATCH"}:
        statuses |= {400, 408, 413}
    if "{" in route.path:
        statuses.add(404)
    calls = set(_calls(route.dependant))
    if require_admin in calls:
        statuses |= {401, 403}
    if rate_limit in calls:
        statuses.add(429)
    for method in methods:
        statuses |= EXTRA.get((method, route.path), set())
    return statuses


def document_errors(routers: Iterable[APIRouter]) -> None:
    """Add the error answers of every ``/api`` operation to its OpenAPI responses (on the
    routers' own routes: FastAPI includes routers by reference). Idempotent."""
    for route in (r for router in routers for r in router.routes):
        if not isinstance(route, APIRoute) or not route.path.startswith("/api"):
            continue
        for status in sorted(_statuses(route)):
            route.responses.setdefault(
                status, {"model": ErrorPublic, "description": DESCRIPTIONS[status]}
            )


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = next(p for p in operation["parameters"] if p["name"] == name)["schema"]
    return schema


def settings_bounds(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Limits that are settings, written into this app's schema (the routes are shared)."""
    from lookalike.names.generate import MAX_TEMPERATURE, MIN_TEMPERATURE
    from lookalike.services.uploads import UPLOAD_TYPES

    paths = schema["paths"]
    names = paths["/api/names"]["get"]
    _parameter(names, "count").update(minimum=1, maximum=settings.names_max_count)
    _parameter(names, "temperature").update(minimum=MIN_TEMPERATURE, maximum=MAX_TEMPERATURE)
    longest = _parameter(names, "max_length")
    longest.pop("anyOf", None)
    longest.update(type="integer", minimum=2, maximum=settings.names_max_length)
    # The built-in corpora's letters; a model trained on another corpus may know others.
    _parameter(names, "prefix").update(
        maxLength=settings.names_max_length - 1, pattern="^[A-Za-z]*$"
    )
    body = paths["/api/predictions"]["post"]["requestBody"]["content"]
    photo = body["multipart/form-data"]["schema"]["properties"]["photo"]
    photo.update(minItems=1, maxItems=settings.max_photos_per_request)
    components = schema["components"]["schemas"]
    # Referenced by the predictions body (a hand-written multipart + JSON alternative).
    components["PredictionFromUpload"] = PredictionFromUpload.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components["UploadCreate"]["properties"]["content_type"]["enum"] = list(UPLOAD_TYPES)
    components["UploadCreate"]["properties"]["size"]["maximum"] = settings.max_image_bytes
    return schema


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """The app's OpenAPI schema: FastAPI's, with this app's settings as limits."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # A copy: parts of FastAPI's schema are the routes' own (module-level) dicts,
            # shared by every app in the process.
            app.openapi_schema = settings_bounds(copy.deepcopy(default()), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
