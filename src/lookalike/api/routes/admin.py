"""Admin access: the sign-in page, sign-out, the admin home page and ``/api/admin/me``.

* ``GET /admin/login?next=/admin/...`` — the sign-in form (already signed in: 303 to ``next``).
* ``POST /admin/login`` — form ``name``, ``password``, ``csrf_token``, ``next``. Success: 303
  to ``next`` (a path on this site, else ``/admin``) with the session cookie. Failure: 401
  (wrong name or password, the same answer for both), 403 (form token missing or stale), 429
  (too many attempts from this address). Browsers (``Accept: text/html``) get the form again
  with the message; other clients get the one JSON error shape.
* ``POST /admin/logout`` — admin + CSRF; ends the session; 303 to the sign-in page.
* ``GET /admin`` — the dashboard: Plotly charts fed by ``/api/analytics/...`` (filters,
  exports); ``web/static/admin_dashboard.js``.
* ``GET /admin/models`` — the model registry: table, timeline, gate decisions, retrain /
  promote / roll back (``web/static/admin_models.js`` over ``/api/models``).
* ``GET /admin/assets/plotly.min.js`` — plotly.js as shipped inside the ``plotly`` package
  (never a CDN: the service works offline); cached for a year under its digest (``?v=``).
* ``GET /api/admin/me`` — who the request is authenticated as.

Authentication itself lives in ``lookalike.api.auth``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from lookalike import accounts
from lookalike.api.auth import (
    CSRF_FIELD,
    HOME_PATH,
    LOGIN_PATH,
    SESSION_COOKIE,
    Admin,
    check_login_form_token,
    clear_login_cookie,
    clear_session_cookie,
    decode_session,
    login_form_token,
    login_nonce,
    login_retry_after,
    new_session,
    require_admin,
    require_csrf,
    safe_next,
    session_admin,
    set_login_cookie,
    set_session_cookie,
)
from lookalike.api.errors import ApiError, error_response
from lookalike.config import Settings

router = APIRouter(tags=["admin"])

# Admin pages: scripts from this site only (no inline script, no eval), nothing framed,
# forms post here only. Styles may also be inline: plotly.js styles its charts with
# <style> rules and style attributes it writes itself.
ADMIN_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PLOTLY_PATH = "/admin/assets/plotly.min.js"


class AdminPublic(BaseModel):
    """Who an admin request is authenticated as."""

    name: str = Field(description="The user's name, or the API token's name.")
    via: Literal["session", "token"]
    user_id: int | None = None
    token_id: int | None = None
    session_expires_at: datetime | None = None


def _page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Content-Security-Policy"] = ADMIN_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "").lower()


def _login_page(
    request: Request,
    *,
    next_path: str,
    name: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    nonce = login_nonce(request)
    response = _page(
        request,
        "admin_login.html",
        {
            "next": next_path,
            "name": name,
            "error": error,
            "csrf_token": login_form_token(settings, nonce),
            "csrf_field": CSRF_FIELD,
        },
        status_code,
    )
    set_login_cookie(response, request, settings, nonce)
    return response


def _login_refusal(
    request: Request,
    *,
    status: int,
    code: str,
    message: str,
    next_path: str,
    name: str = "",
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> Response:
    if _wants_html(request):
        page = _login_page(
            request, next_path=next_path, name=name, error=message, status_code=status
        )
        page.headers.update(headers or {})
        return page
    return error_response(status, code, message, details, headers=headers)


@router.get(LOGIN_PATH, response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str | None = None) -> Response:
    target = safe_next(next)
    if session_admin(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, next_path=target)


@router.post(LOGIN_PATH, include_in_schema=False)
def login(
    request: Request,
    name: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form(""),
) -> Response:
    settings: Settings = request.app.state.settings
    target = safe_next(next)
    shown_name = name[:64]
    retry = login_retry_after(request)
    if retry is not None:
        return _login_refusal(
            request,
            status=429,
            code="rate_limited",
            message=f"Too many sign-in attempts. Try again in {retry} s.",
            next_path=target,
            name=shown_name,
            headers={"Retry-After": str(retry)},
            details={
                "limit_per_minute": settings.login_attempts_per_minute,
                "retry_after": retry,
            },
        )
    if not check_login_form_token(request, settings, csrf_token):
        return _login_refusal(
            request,
            status=403,
            code="auth.csrf",
            message="The sign-in form expired or did not come from this site."
            " Please sign in again.",
            next_path=target,
            name=shown_name,
        )
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as db:
        user = accounts.authenticate(db, name.strip(), password)
    if user is None:
        return _login_refusal(
            request,
            status=401,
            code="auth.invalid_credentials",
            message="Wrong name or password.",
            next_path=target,
            name=shown_name,
        )
    response = RedirectResponse(target, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    set_session_cookie(response, request, settings, new_session(user))
    clear_login_cookie(response, request, settings)
    return response


@router.post("/admin/logout", include_in_schema=False)
def logout(request: Request, admin: Admin = Depends(require_csrf)) -> Response:
    settings: Settings = request.app.state.settings
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    if admin.via == "session":
        data = decode_session(settings, request.cookies.get(SESSION_COOKIE, ""))
        if data is not None:
            sessions: sessionmaker[Session] = request.app.state.sessions
            until = datetime.fromtimestamp(data.expires_at(settings), UTC)
            with sessions() as db:
                accounts.end_session(db, data.session_id, until)
        clear_session_cookie(response, request, settings)
    return response


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    digest: str  # sha256 prefix: the cache key in the URL and the ETag


@cache
def plotly_asset() -> Asset:
    """plotly.min.js from the installed ``plotly`` package (read once per process)."""
    try:
        source = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
        body = source.read_bytes()
    except (ModuleNotFoundError, OSError) as exc:
        raise ApiError(
            "The admin charts need plotly.js from the `plotly` package, which is missing:"
            " pip install 'plotly>=5.20,<8'.",
            code="admin.plotly_missing",
            status=503,
        ) from exc
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Asset(body=body, gzipped=gzip.compress(body, 6, mtime=0), digest=digest)


def plotly_url() -> str:
    """The script URL for templates: versioned by digest, so it can be cached for good."""
    try:
        return f"{PLOTLY_PATH}?v={plotly_asset().digest}"
    except ApiError:
        return PLOTLY_PATH  # the page loads; its charts say plotly.js is missing


@router.get(PLOTLY_PATH, include_in_schema=False)
def plotly_js(request: Request, _: Admin = Depends(require_admin)) -> Response:
    asset = plotly_asset()
    zipped = "gzip" in request.headers.get("accept-encoding", "").lower()
    etag = f'"{asset.digest}{"-gz" if zipped else ""}"'
    headers = {
        "Cache-Control": "private, max-age=31536000, immutable",
        "ETag": etag,
        "Vary": "Accept-Encoding",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if zipped:
        headers["Content-Encoding"] = "gzip"
    return Response(
        asset.gzipped if zipped else asset.body,
        media_type="text/javascript; charset=utf-8",
        headers=headers,
    )


def _admin_page(request: Request, admin: Admin, template: str, section: str) -> HTMLResponse:
    return _page(
        request,
        template,
        {
            "admin": admin,
            "csrf_token": admin.csrf_token or "",
            "csrf_field": CSRF_FIELD,
            "plotly_url": plotly_url(),
            "section": section,
        },
    )


@router.get(HOME_PATH, response_class=HTMLResponse, include_in_schema=False)
def admin_home(request: Request, admin: Admin = Depends(require_admin)) -> HTMLResponse:
    return _admin_page(request, admin, "admin.html", "dashboard")


@router.get("/admin/models", response_class=HTMLResponse, include_in_schema=False)
def admin_models(request: Request, admin: Admin = Depends(require_admin)) -> HTMLResponse:
    return _admin_page(request, admin, "admin_models.html", "models")


@router.get("/api/admin/me", response_model=AdminPublic, summary="Who am I (admin)")
def me(admin: Admin = Depends(require_admin)) -> AdminPublic:
    return AdminPublic(
        name=admin.name,
        via=admin.via,
        user_id=admin.user_id,
        token_id=admin.token_id,
        session_expires_at=admin.expires_at,
    )
