"""Admin authentication for the web service: signed session cookies, API tokens, CSRF.

Protecting a route (the stable API other routers use)::

    from lookalike.api.auth import AdminDep, require_admin, require_csrf

    router = APIRouter(dependencies=[Depends(require_admin)])   # a router of admin routes

    @router.get("/api/things")                      # read-only: admin only
    def things() -> ...: ...

    @router.post("/api/things", dependencies=[Depends(require_csrf)])   # changes state
    def change(admin: AdminDep) -> ...: ...            # who did it, for the audit

``require_admin`` returns an :class:`Admin` (``name``, ``via`` = ``"session"`` or ``"token"``,
``actor`` for logs and audit rows). It accepts

* ``Authorization: Bearer <token>`` from ``lookalike admin create-token`` (a wrong or revoked
  token: 401 ``auth.invalid_token``, never a fallback to the cookie), or
* the session cookie set by ``POST /admin/login``.

Anonymous requests are refused: under ``/api/`` with 401 ``auth.required`` in the one error
shape; anywhere else (admin HTML pages) with a 303 redirect to ``/admin/login?next=<path>``.

``require_csrf`` (which includes ``require_admin``) protects state-changing requests made with
the cookie: the form field ``csrf_token`` or the header ``X-CSRF-Token`` must equal the
session's token (admin pages put it in ``<meta name="csrf-token">`` and in their forms), else
403 ``auth.csrf``. Requests with a Bearer token need no CSRF token (a browser never adds
that header by itself). Send the header with JSON bodies: the form field is only read from
form-encoded bodies.

The session cookie (``lookalike_admin``) is ``v1.<payload>.<signature>``: base64url JSON
(user id, a stamp of the user's password hash, session id, CSRF token, issued-at) signed with
HMAC-SHA256 under a key derived from ``settings.secret_key``. It is HttpOnly,
SameSite=Strict, Path=/ and Secure when the request came over https — behind a TLS proxy,
uvicorn takes the scheme from ``X-Forwarded-Proto`` when the proxy's address is in
``forwarded_allow_ips`` (none by default), or set ``admin_secure_cookies``. A session
ends after ``admin_session_hours``, at sign-out (its id is remembered until it would have
expired), when the user's password changes or when the user is deleted.

``admin_routes(app)`` lists every route whose dependency tree contains ``require_admin``;
the tests refuse anonymous access on each of them, and fail when a route under ``/admin`` or
``/api/admin`` (other than the sign-in page) is not among them.

The sign-in form itself is protected by a signed double-submit token: a random nonce in an
HttpOnly cookie limited to ``/admin/login`` and, in the form, its HMAC under the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from lookalike import accounts
from lookalike.api.errors import ApiError
from lookalike.api.limits import Limiter, client_address
from lookalike.api.routing import flat_routes
from lookalike.api.state import app_state
from lookalike.config import Settings

SESSION_COOKIE = "lookalike_admin"
LOGIN_COOKIE = "lookalike_login"  # the sign-in form's CSRF nonce
LOGIN_PATH = "/admin/login"
HOME_PATH = "/admin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_COOKIE_SECONDS = 2 * 3600
CLOCK_SKEW_SECONDS = 60
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="admin token",
    description="An admin API token from `lookalike admin create-token NAME`.",
)


@dataclass(frozen=True)
class Admin:
    """Who is making an admin request, and how they proved it."""

    name: str  # the user's name, or the token's name
    via: Literal["session", "token"]
    user_id: int | None = None
    token_id: int | None = None
    csrf_token: str | None = None  # session only: what state-changing requests must send
    expires_at: datetime | None = None  # session only

    @property
    def actor(self) -> str:
        """A label for logs and audit records: ``alice`` or ``token:ci``."""
        return self.name if self.via == "session" else f"token:{self.name}"


@dataclass(frozen=True)
class SessionData:
    """What the signed session cookie carries."""

    user_id: int
    stamp: str  # accounts.UserInfo.stamp at sign-in: a new password ends the session
    session_id: str
    csrf_token: str
    issued_at: int  # unix seconds

    def expires_at(self, settings: Settings) -> int:
        return self.issued_at + session_seconds(settings)


# --- signing ----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_seconds(settings: Settings) -> int:
    return max(1, math.floor(settings.admin_session_hours * 3600))


def new_session(user: accounts.UserInfo, now: float | None = None) -> SessionData:
    return SessionData(
        user_id=user.id,
        stamp=user.stamp,
        session_id=secrets.token_hex(16),
        csrf_token=secrets.token_urlsafe(32),
        issued_at=int(time.time() if now is None else now),
    )


def encode_session(settings: Settings, data: SessionData) -> str:
    payload = {
        "u": data.user_id,
        "s": data.stamp,
        "i": data.session_id,
        "c": data.csrf_token,
        "t": data.issued_at,
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signed = f"v1.{body}"
    signature = hmac.new(settings.signing_key("admin-session"), signed.encode(), hashlib.sha256)
    return f"{signed}.{_b64(signature.digest())}"


def decode_session(settings: Settings, value: str, now: float | None = None) -> SessionData | None:
    """The session in a cookie value, or None if it is malformed, tampered with or expired."""
    if not value or len(value) > 1024:
        return None
    signed, _, signature = value.rpartition(".")
    if not signed.startswith("v1."):
        return None
    expected = hmac.new(settings.signing_key("admin-session"), signed.encode(), hashlib.sha256)
    try:
        # Compared as text against the one canonical encoding: base64 decoding ignores the
        # last character's spare bits, so comparing decoded bytes would accept altered text.
        if not hmac.compare_digest(signature.encode(), _b64(expected.digest()).encode()):
            return None
        payload = json.loads(_unb64(signed.removeprefix("v1.")))
        data = SessionData(
            user_id=payload["u"],
            stamp=payload["s"],
            session_id=payload["i"],
            csrf_token=payload["c"],
            issued_at=payload["t"],
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    fields_ok = (
        isinstance(data.user_id, int)
        and isinstance(data.issued_at, int)
        and all(isinstance(v, str) and v for v in (data.stamp, data.session_id, data.csrf_token))
    )
    if not fields_ok:
        return None
    now = time.time() if now is None else now
    if data.issued_at > now + CLOCK_SKEW_SECONDS or now >= data.expires_at(settings):
        return None
    return data


# --- cookies ----------------------------------------------------------------------------------


def cookie_secure(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or settings.admin_secure_cookies


def set_session_cookie(
    response: Response, request: Request, settings: Settings, data: SessionData
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        encode_session(settings, data),
        max_age=session_seconds(settings),
        path="/",
        secure=cookie_secure(request, settings),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=cookie_secure(request, settings),
        httponly=True,
        samesite="strict",
    )


def login_nonce(request: Request) -> str:
    """The sign-in form's nonce: the one in the request's cookie if well-formed, else new."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if _NONCE.fullmatch(nonce):
        return nonce
    return secrets.token_urlsafe(24)


def login_form_token(settings: Settings, nonce: str) -> str:
    """The CSRF token the sign-in form must send back with the cookie holding ``nonce``."""
    return _b64(
        hmac.new(settings.signing_key("login-form"), nonce.encode(), hashlib.sha256).digest()
    )


def set_login_cookie(response: Response, request: Request, settings: Settings, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_COOKIE_SECONDS,
        path=LOGIN_PATH,
        secure=cookie_secure(request, settings),
        httponly=True,
        samesite="strict",
    )


def check_login_form_token(request: Request, settings: Settings, sent: str) -> bool:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not sent:
        return False
    return hmac.compare_digest(sent.encode(), login_form_token(settings, nonce).encode())


def clear_login_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        LOGIN_COOKIE,
        path=LOGIN_PATH,
        secure=cookie_secure(request, settings),
        httponly=True,
        samesite="strict",
    )


# --- redirects --------------------------------------------------------------------------------


def safe_next(value: str | None, default: str = HOME_PATH) -> str:
    """``value`` if it is a path on this site (``/...``), else ``default``: no open redirect
    (``//host``, ``/\\host``, ``https://host``, ``javascript:`` and control characters are
    all refused), and never back to the sign-in page."""
    if not value or len(value) > 2000 or not value.startswith("/"):
        return default
    if value.startswith(("//", "/\\")) or "\\" in value:
        return default
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.rstrip("/") == LOGIN_PATH:
        return default
    return value


def login_url(next_path: str | None = None) -> str:
    target = safe_next(next_path, "")
    return f"{LOGIN_PATH}?{urlencode({'next': target})}" if target else LOGIN_PATH


# --- the dependencies -------------------------------------------------------------------------


def _sessions(request: Request) -> sessionmaker[Session]:
    return app_state(request.app).sessions


def _settings(request: Request) -> Settings:
    return app_state(request.app).settings


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _refused(request: Request) -> ApiError:
    """Anonymous: 401 for the API, a redirect to the sign-in page for pages."""
    if is_api_path(request.url.path):
        return ApiError(
            "Sign in first: send `Authorization: Bearer <admin token>` (from `lookalike admin"
            " create-token NAME`) or the session cookie from /admin/login.",
            code="auth.required",
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="lookalike admin"'},
        )
    target = None
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = login_url(target)
    return ApiError(
        f"Sign in first: {location}",
        code="auth.required",
        status=303,
        details={"location": location},
        headers={"Location": location, "Cache-Control": "no-store"},
    )


def session_admin(request: Request) -> Admin | None:
    """The admin signed in with the session cookie, if it is valid and still live."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    settings = _settings(request)
    data = decode_session(settings, value)
    if data is None:
        return None
    with _sessions(request)() as db:
        user = accounts.get_user(db, data.user_id)
        if user is None or not hmac.compare_digest(user.stamp, data.stamp):
            return None
        if accounts.session_ended(db, data.session_id):
            return None
    return Admin(
        name=user.name,
        via="session",
        user_id=user.id,
        csrf_token=data.csrf_token,
        expires_at=datetime.fromtimestamp(data.expires_at(settings), UTC),
    )


def require_admin(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Admin:
    """Dependency: the signed-in admin (session cookie or Bearer token); refuses anyone else."""
    # ``credentials`` only documents the scheme in OpenAPI; the raw header is checked here so
    # that any Authorization header that is not a live token is refused (no cookie fallback).
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        info = None
        if scheme.lower() == "bearer" and token.strip():
            with _sessions(request)() as db:
                info = accounts.verify_token(db, token.strip())
        if info is None:
            raise ApiError(
                "The admin token is not valid (mistyped, revoked, or not an admin token)."
                " `lookalike admin create-token NAME` makes a new one.",
                code="auth.invalid_token",
                status=401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="lookalike admin", error="invalid_token"'
                },
            )
        return Admin(name=info.name, via="token", token_id=info.id)
    admin = session_admin(request)
    if admin is None:
        raise _refused(request)
    return admin


def is_admin(request: Request) -> bool:
    """Whether the request comes from a signed-in admin (for routes that show admins more:
    a public route never refuses on it, so it is not a dependency)."""
    try:
        require_admin(request, None)
    except ApiError:
        return False
    return True


AdminDep = Annotated[Admin, Depends(require_admin)]
"""The signed-in admin, for routes that use who it is (admin-only routers declare
``dependencies=[Depends(require_admin)]`` once)."""

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def require_csrf(request: Request, admin: Admin = Depends(require_admin)) -> Admin:
    """Dependency for state-changing admin requests: with the session cookie, the request must
    carry the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``)."""
    if admin.via == "token":
        return admin
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith(_FORM_TYPES):
            try:
                value = (await request.form()).get(CSRF_FIELD)
            except Exception:  # an unparseable body has no token either
                value = None
            sent = value if isinstance(value, str) else None
    expected = admin.csrf_token or ""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(
            "This admin request lacks a valid CSRF token (form field `csrf_token` or header"
            " `X-CSRF-Token`). Reload the page and try again.",
            code="auth.csrf",
            status=403,
        )
    return admin


# --- sign-in rate limit -----------------------------------------------------------------------


def login_limiter(request: Request) -> Limiter:
    """The app's sign-in limiter (per client address)."""
    return app_state(request.app).login_limiter


def login_retry_after(request: Request) -> int | None:
    """Record a sign-in attempt; None when allowed, else the seconds to wait."""
    retry = login_limiter(request).hit(client_address(request))
    return None if retry is None else max(1, math.ceil(retry))


# --- which routes are protected ---------------------------------------------------------------


def _calls(dependant: Any) -> Iterator[Any]:
    for dep in getattr(dependant, "dependencies", ()):
        yield dep.call
        yield from _calls(dep)


def admin_routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    """``(path, methods)`` of every route of ``app`` that depends on ``require_admin``
    (directly, through ``require_csrf`` or any other dependency)."""
    found = []
    for route in flat_routes(app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        if any(call is require_admin for call in _calls(dependant)):
            found.append((str(route.path), set(getattr(route, "methods", None) or ())))
    return found
