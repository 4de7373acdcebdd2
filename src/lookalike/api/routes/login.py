"""Signing in and out of the admin pages.

* ``GET /admin/login?next=/admin/...`` — the sign-in form (already signed in: 303 to ``next``).
* ``POST /admin/login`` — form ``name``, ``password``, ``csrf_token``, ``next``. Success: 303
  to ``next`` (a path on this site, else ``/admin``) with the session cookie. Failure: 401
  (wrong name or password, the same answer for both), 403 (form token missing or stale), 429
  (too many attempts from this address). Browsers (``Accept: text/html``) get the form again
  with the message; other clients get the one JSON error shape.
* ``POST /admin/logout`` — admin + CSRF; ends the session; 303 to the sign-in page.

Authentication itself lives in ``lookalike.api.auth``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lookalike import accounts
from lookalike.api.auth import (
    CSRF_FIELD,
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
    require_csrf,
    safe_next,
    session_admin,
    set_login_cookie,
    set_session_cookie,
)
from lookalike.api.deps import StateDep
from lookalike.api.errors import error_response
from lookalike.api.routes.pages import admin_page
from lookalike.api.state import app_state

router = APIRouter(tags=["admin"])


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
    settings = app_state(request.app).settings
    nonce = login_nonce(request)
    response = admin_page(
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
    state: StateDep,
    name: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form(""),
) -> Response:
    settings = state.settings
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
    with state.sessions() as db:
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
def logout(request: Request, state: StateDep, admin: Admin = Depends(require_csrf)) -> Response:
    settings = state.settings
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    if admin.via == "session":
        data = decode_session(settings, request.cookies.get(SESSION_COOKIE, ""))
        if data is not None:
            until = datetime.fromtimestamp(data.expires_at(settings), UTC)
            with state.sessions() as db:
                accounts.end_session(db, data.session_id, until)
        clear_session_cookie(response, request, settings)
    return response
