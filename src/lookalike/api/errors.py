"""One error shape for every answer that is not a success.

Every non-2xx JSON answer of the service is ``{"error": {"code", "message", "details"}}``:
the engine's ``LookalikeError`` (its own status and code), request validation (422
``request.invalid`` listing the fields), Starlette's HTTP errors (unknown route, wrong method,
unparseable body), an unreachable database (503 ``database.unavailable`` with ``Retry-After``)
and anything unexpected (500 ``internal``, logged, with a generic message).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.api.routing import allowed_methods
from lookalike.errors import LookalikeError

log = logging.getLogger("lookalike.api")

# Starlette/FastAPI HTTP errors -> our machine codes.
HTTP_CODES: dict[int, str] = {
    400: "request.bad_request",
    401: "http.unauthorized",
    403: "http.forbidden",
    404: "http.not_found",
    405: "http.method_not_allowed",
    406: "http.not_acceptable",
    411: "request.length_required",
    413: "request.too_large",
    415: "request.unsupported_media_type",
    416: "http.range_not_satisfiable",
    422: "request.invalid",
    429: "rate_limited",
    500: "internal",
    503: "http.unavailable",
}


class ApiError(LookalikeError):
    """A ``LookalikeError`` raised by the web layer; may carry response headers."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        details: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, details=details)
        self.headers: dict[str, str] = dict(headers or {})


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details), status_code=status, headers=dict(headers or {})
    )


def _jsonable(value: Any) -> Any:
    """Details must always serialise: keep JSON scalars and containers, stringify the rest."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


async def lookalike_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LookalikeError)
    headers = getattr(exc, "headers", None)
    return error_response(
        exc.status, exc.code, exc.message, _jsonable(exc.details), headers=headers
    )


def validation_fields(errors: Any) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors -> ``[{"field", "message", "type"}]`` (never the raw input,
    which may be large or binary)."""
    fields = []
    for e in errors:
        loc = [str(part) for part in e.get("loc", ())]
        fields.append(
            {
                "field": ".".join(loc) or "body",
                "location": loc,
                "message": str(e.get("msg", "invalid")),
                "type": str(e.get("type", "invalid")),
            }
        )
    return fields


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = validation_fields(exc.errors())
    names = ", ".join(f["field"] for f in fields) or "the request"
    return error_response(
        422,
        "request.invalid",
        f"The request does not have the expected shape: check {names}.",
        {"fields": fields},
    )


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = HTTP_CODES.get(status, f"http.{status}")
    headers = dict(exc.headers or {})
    if status == 404:
        message = f"Nothing here: {request.method} {request.url.path} is not a known address."
    elif status == 405:
        allowed = allowed_methods(request.app.routes, request.url.path)
        if allowed:  # Starlette names only the first route of the path: name them all
            headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed on {request.url.path}." + (
            f" Allowed: {headers['Allow']}." if "Allow" in headers else ""
        )
    elif isinstance(exc.detail, str) and exc.detail:
        message = exc.detail
    else:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "The request could not be answered."
    return error_response(status, code, message, {}, headers=headers)


# Raised while the database cannot be reached (down, restarting, out of connections, SQLite
# locked past its timeout): a passing condition, answered 503 and retried by the client.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
DATABASE_RETRY_SECONDS = 5


def database_unavailable(exc: Exception) -> JSONResponse:
    return error_response(
        503,
        "database.unavailable",
        "The database cannot be reached right now; nothing was recorded. Try again in a few"
        " seconds.",
        {"reason": type(exc).__name__},
        headers={"Retry-After": str(DATABASE_RETRY_SECONDS)},
    )


# SQLite reports a broken schema ("no such table") as an OperationalError too: that is a bug
# (500), not an outage. These are the messages of a SQLite file that cannot be used right now.
_SQLITE_UNAVAILABLE = ("locked", "unable to open", "disk i/o", "busy")


def is_database_outage(exc: BaseException) -> bool:
    if not isinstance(exc, DATABASE_ERRORS):
        return False
    orig = getattr(exc, "orig", None)
    if isinstance(orig, sqlite3.Error):
        return any(text in str(orig).lower() for text in _SQLITE_UNAVAILABLE)
    return True


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if not is_database_outage(exc):
        return await internal_error_handler(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return database_unavailable(exc)


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500,
        "internal",
        "Something went wrong on our side; the error was logged. Please try again later.",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LookalikeError, lookalike_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, database_error_handler)
    app.add_exception_handler(Exception, internal_error_handler)
