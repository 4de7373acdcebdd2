"""Admin access over HTTP: every admin route refuses anyone who is not signed in, sign-in and
sign-out, the session cookie, CSRF, API tokens, the sign-in rate limit, the production
secret. On SQLite and PostgreSQL; no model is needed (the app starts without one)."""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, ValidationError
from support.api import assert_error, assert_error_shape

from lookalike import accounts, cli
from lookalike.api import create_app
from lookalike.api.auth import (
    LOGIN_PATH,
    SESSION_COOKIE,
    Admin,
    admin_routes,
    encode_session,
    new_session,
    require_admin,
    require_csrf,
    safe_next,
)
from lookalike.api.state import app_state
from lookalike.config import DEV_SECRET, Settings, get_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "admin-test-secret-0123456789abcdef"
PASSWORD = "correct horse battery staple"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        secret_key=SECRET,
        rate_limit_per_minute=0,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c


def add_user(app: FastAPI, name: str = "alice", password: str = PASSWORD) -> accounts.UserInfo:
    with app_state(app).sessions() as db:
        return accounts.create_user(db, name, password)


def add_token(app: FastAPI, name: str = "ci") -> tuple[int, str]:
    with app_state(app).sessions() as db:
        return accounts.create_token(db, name)


def session_cookie(settings: Settings, user: accounts.UserInfo, issued: float | None = None) -> str:
    """A session cookie as the sign-in would set it (optionally issued in the past)."""
    return encode_session(settings, new_session(user, issued))


def login_form(client: TestClient, next_path: str | None = None) -> str:
    """Open the sign-in page; its CSRF token."""
    r = client.get(LOGIN_PATH, params={"next": next_path} if next_path else None)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    match = CSRF_INPUT.search(r.text)
    assert match, r.text
    return match.group(1)


def login(
    client: TestClient,
    name: str = "alice",
    password: str = PASSWORD,
    next_path: str = "",
    **kwargs: Any,
) -> Any:
    token = login_form(client)
    form = {"name": name, "password": password, "csrf_token": token, "next": next_path}
    return client.post(LOGIN_PATH, data=form, **kwargs)


def set_cookie_headers(response: Any) -> dict[str, str]:
    """``Set-Cookie`` headers of a response by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def concrete(path: str) -> str:
    return re.sub(r"{\w+(?::\w+)?}", "x", path)


# --- every admin route refuses anyone not signed in -------------------------------------------


def assert_refused(response: Any, path: str, code: str = "auth.required") -> None:
    if path.startswith("/api/") or code != "auth.required":
        assert_error(response, 401, code)
        assert response.headers["www-authenticate"].startswith("Bearer")
    else:
        assert response.status_code == 303, (path, response.status_code, response.text)
        location = urlsplit(response.headers["location"])
        assert location.path == LOGIN_PATH and not location.netloc
        assert_error_shape(response.json())


def test_every_admin_route_refuses_anonymous_and_bad_credentials(
    app: FastAPI, client: TestClient, settings: Settings
) -> None:
    routes = admin_routes(app)
    paths = {path for path, _ in routes}
    assert {"/admin", "/admin/logout", "/api/admin/me"} <= paths
    # Nothing under /admin or /api/admin is public except the sign-in page itself.
    for route in app.routes:
        for sub in getattr(route, "effective_route_contexts", lambda r=route: [r])():
            path = getattr(sub, "path", "")
            if path.startswith(("/admin", "/api/admin")) and path != LOGIN_PATH:
                assert path in paths, f"{path} does not depend on require_admin"

    user = add_user(app)
    revoked_id, revoked = add_token(app, "old")
    with app_state(app).sessions() as db:
        accounts.revoke_token(db, revoked_id)
    good = session_cookie(settings, user)
    other_secret = settings.model_copy(update={"secret_key": "another-secret-0123456789abcdef"})
    payload, _, signature = good.rpartition(".")
    bad_cookies = {
        "tampered signature": f"{payload}.{'B' if signature[0] != 'B' else 'C'}{signature[1:]}",
        # Same bytes once decoded (the last character's spare bits), different text.
        "non-canonical signature": f"{payload}.{signature[:-1]}{_spare_bits(signature[-1])}",
        "tampered payload": good.replace(".", ".e30", 1),
        "other secret": session_cookie(other_secret, user),
        "expired": session_cookie(settings, user, time.time() - 12 * 3600 - 5),
        "issued in the future": session_cookie(settings, user, time.time() + 3600),
        "unknown user": encode_session(
            settings, new_session(accounts.UserInfo(999, "ghost", user.created_at, None, "x"))
        ),
        "old password": encode_session(
            settings,
            new_session(accounts.UserInfo(user.id, user.name, user.created_at, None, "0" * 16)),
        ),
        "garbage": "v1.%%%.###",
    }
    bad_headers = {
        "revoked token": f"Bearer {revoked}",
        "unknown token": "Bearer lka_" + "A" * 43,
        "empty bearer": "Bearer ",
        "basic auth": "Basic YWxpY2U6cGFzc3dvcmQ=",
    }

    checked = 0
    for path, methods in routes:
        url = concrete(path)
        for method in sorted(methods - {"HEAD"}):
            client.cookies.clear()
            assert_refused(client.request(method, url), path)
            for why, header in bad_headers.items():
                r = client.request(method, url, headers={"Authorization": header})
                assert r.status_code == 401, (why, method, url, r.status_code)
                assert_refused(r, path, "auth.invalid_token")
            for why, value in bad_cookies.items():
                client.cookies.clear()
                client.cookies.set(SESSION_COOKIE, value)
                r = client.request(method, url)
                assert r.status_code in (401, 303), (why, method, url, r.status_code)
                assert_refused(r, path)
            checked += 1
    assert checked >= 3

    # The same valid cookie is accepted (the refusals above are not an accident).
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, good)
    assert client.get("/api/admin/me").json()["name"] == "alice"


def test_page_redirect_keeps_a_safe_next(client: TestClient) -> None:
    r = client.get("/admin", params={"tab": "models"})
    assert r.status_code == 303
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query == {"next": ["/admin?tab=models"]}
    page = client.get(r.headers["location"])
    assert 'name="next" value="/admin?tab=models"' in page.text


class Body(BaseModel):
    value: int


def test_a_new_route_is_covered_automatically(app: FastAPI, client: TestClient) -> None:
    """How other routers protect themselves; the refusal test then finds them too."""
    router = APIRouter()

    @router.post("/api/things/{thing}", dependencies=[Depends(require_csrf)])
    def change(thing: str, body: Body, admin: Admin = Depends(require_admin)) -> dict[str, Any]:
        return {"thing": thing, "value": body.value, "by": admin.actor}

    app.include_router(router)
    assert ("/api/things/{thing}", {"POST"}) in admin_routes(app)
    assert_error(client.post("/api/things/x", json={"value": 1}), 401, "auth.required")
    _, token = add_token(app, "robot")
    r = client.post(
        "/api/things/x", json={"value": 1}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.json() == {"thing": "x", "value": 1, "by": "token:robot"}  # no CSRF with a token


# --- sign-in, cookies, sign-out -----------------------------------------------------------------


def test_login_flow_and_cookie_flags(app: FastAPI, client: TestClient) -> None:
    add_user(app)
    page = client.get(LOGIN_PATH)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    login_cookie = set_cookie_headers(page)["lookalike_login"].lower()
    assert "httponly" in login_cookie and "samesite=strict" in login_cookie

    # Wrong password and unknown name: the same 401 page, no hint which one was wrong.
    answers = []
    for name, password in [("alice", "not the password at all"), ("mallory", PASSWORD)]:
        r = login(client, name, password, headers=HTML)
        assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
        assert SESSION_COOKIE not in set_cookie_headers(r)
        answers.append(re.search(r'id="login-error"[^>]*>([^<]*)<', r.text).group(1))  # type: ignore[union-attr]
    assert answers[0] == answers[1] == "Wrong name or password."
    assert_error(login(client, "alice", "nope nope nope nope"), 401, "auth.invalid_credentials")

    r = login(client, "alice", PASSWORD, next_path="/api/admin/me")
    assert r.status_code == 303 and r.headers["location"] == "/api/admin/me"
    cookie = set_cookie_headers(r)[SESSION_COOKIE]
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert {"httponly", "samesite=strict", "path=/"} <= set(flags)
    assert "secure" not in flags  # plain http here
    assert "max-age=43200" in flags  # admin_session_hours
    assert "lookalike_login" in set_cookie_headers(r)  # the form's nonce is dropped

    me = client.get("/api/admin/me").json()
    assert (me["name"], me["via"], me["token_id"]) == ("alice", "session", None)
    page = client.get("/admin")
    assert page.status_code == 200 and "Signed in as <strong>alice</strong>" in page.text
    assert page.headers["cache-control"] == "no-store"
    with app_state(app).sessions() as db:
        assert accounts.get_user_by_name(db, "alice").last_login_at is not None

    # Signed in already: the sign-in page sends you on.
    r = client.get(LOGIN_PATH, params={"next": "/admin?x=1"})
    assert r.status_code == 303 and r.headers["location"] == "/admin?x=1"


def test_secure_cookies_over_https(app: FastAPI, client: TestClient, settings: Settings) -> None:
    add_user(app)
    https = TestClient(app, base_url="https://testserver", follow_redirects=False)
    r = login(https)
    assert r.status_code == 303
    for name, header in set_cookie_headers(r).items():
        assert "secure" in [p.strip().lower() for p in header.split(";")], name
    assert https.get("/api/admin/me").status_code == 200

    forced = settings.model_copy(update={"admin_secure_cookies": True})
    app_state(app).settings = forced
    page = client.get(LOGIN_PATH)  # plain http, but the operator says it is behind TLS
    assert "; secure" in set_cookie_headers(page)["lookalike_login"].lower()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/admin"),
        ("", "/admin"),
        ("/admin?tab=models#top", "/admin?tab=models#top"),
        ("/api/admin/me", "/api/admin/me"),
        ("//evil.example/admin", "/admin"),
        ("/\\evil.example", "/admin"),
        ("https://evil.example/", "/admin"),
        ("javascript:alert(1)", "/admin"),
        ("/admin\r\nSet-Cookie: x=1", "/admin"),
        ("/admin/login?next=/admin", "/admin"),
        ("admin", "/admin"),
    ],
)
def test_next_is_never_an_open_redirect(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_login_redirects_only_within_the_site(app: FastAPI, client: TestClient) -> None:
    add_user(app)
    r = login(client, next_path="//evil.example/steal")
    assert r.status_code == 303 and r.headers["location"] == "/admin"


def test_login_form_needs_its_csrf_token(app: FastAPI, client: TestClient) -> None:
    form = {"name": "alice", "password": PASSWORD, "next": ""}
    # No form token (and no cookie): refused before the password is even checked.
    assert_error(client.post(LOGIN_PATH, data=form), 403, "auth.csrf")
    token = login_form(client)
    assert_error(client.post(LOGIN_PATH, data={**form, "csrf_token": token[:-2]}), 403, "auth.csrf")
    # A token without the cookie it is bound to (another browser's form).
    client.cookies.clear()
    r = client.post(LOGIN_PATH, data={**form, "csrf_token": token}, headers=HTML)
    assert r.status_code == 403 and "expired" in r.text and CSRF_INPUT.search(r.text)


def test_logout_needs_csrf_and_ends_the_session(
    app: FastAPI, client: TestClient, settings: Settings
) -> None:
    user = add_user(app)
    assert login(client).status_code == 303
    cookie = client.cookies.get(SESSION_COOKIE)
    page = client.get("/admin").text
    csrf = CSRF_INPUT.search(page).group(1)  # type: ignore[union-attr]
    assert f'<meta name="csrf-token" content="{csrf}">' in page

    assert_error(client.post("/admin/logout"), 403, "auth.csrf")
    assert_error(client.post("/admin/logout", data={"csrf_token": "nope"}), 403, "auth.csrf")
    assert_error(
        client.post("/admin/logout", headers={"X-CSRF-Token": csrf + "x"}), 403, "auth.csrf"
    )
    # Another session's token is no good either.
    other = TestClient(app, follow_redirects=False)
    other.cookies.set(SESSION_COOKIE, session_cookie(settings, user))
    assert_error(other.post("/admin/logout", data={"csrf_token": csrf}), 403, "auth.csrf")
    assert client.get("/api/admin/me").status_code == 200  # still signed in

    r = client.post("/admin/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == LOGIN_PATH
    assert "max-age=0" in set_cookie_headers(r)[SESSION_COOKIE].lower()
    assert_error(client.get("/api/admin/me"), 401, "auth.required")
    # A copy of the old cookie does not work any more either.
    client.cookies.set(SESSION_COOKIE, cookie)
    assert_error(client.get("/api/admin/me"), 401, "auth.required")
    assert client.get("/admin").status_code == 303
    assert other.get("/api/admin/me").status_code == 200  # only that session ended


def test_csrf_header_works_for_json_requests(
    app: FastAPI, client: TestClient, settings: Settings
) -> None:
    user = add_user(app)
    data = new_session(user)
    client.cookies.set(SESSION_COOKIE, encode_session(settings, data))
    r = client.post("/admin/logout", headers={"X-CSRF-Token": data.csrf_token})
    assert r.status_code == 303


def test_new_password_or_deleted_user_ends_sessions(
    app: FastAPI, client: TestClient, settings: Settings
) -> None:
    user = add_user(app)
    client.cookies.set(SESSION_COOKIE, session_cookie(settings, user))
    assert client.get("/api/admin/me").status_code == 200
    with app_state(app).sessions() as db:
        accounts.set_password(db, "alice", "a brand new passphrase")
    assert_error(client.get("/api/admin/me"), 401, "auth.required")
    with app_state(app).sessions() as db:
        user = accounts.get_user_by_name(db, "alice")
    client.cookies.set(SESSION_COOKIE, session_cookie(settings, user))
    assert client.get("/api/admin/me").status_code == 200
    with app_state(app).sessions() as db:
        accounts.delete_user(db, "alice")
    assert_error(client.get("/api/admin/me"), 401, "auth.required")


# --- tokens -----------------------------------------------------------------------------------


def test_token_auth_and_revocation(app: FastAPI, client: TestClient) -> None:
    token_id, token = add_token(app, "ci")
    auth = {"Authorization": f"Bearer {token}"}
    me = client.get("/api/admin/me", headers=auth)
    assert me.status_code == 200
    assert me.json() == {
        "name": "ci",
        "via": "token",
        "user_id": None,
        "token_id": token_id,
        "session_expires_at": None,
    }
    with app_state(app).sessions() as db:
        (info,) = accounts.list_tokens(db)
    assert info.last_used_at is not None
    page = client.get("/admin", headers=auth)
    assert page.status_code == 200 and "(API token)" in page.text and "logout" not in page.text
    assert client.post("/admin/logout", headers=auth).status_code == 303  # no CSRF needed

    with app_state(app).sessions() as db:
        accounts.revoke_token(db, token_id)
    assert_error(client.get("/api/admin/me", headers=auth), 401, "auth.invalid_token")
    # A bad token is refused even next to a valid session cookie (no silent fallback).
    user = add_user(app)
    client.cookies.set(SESSION_COOKIE, encode_session(app_state(app).settings, new_session(user)))
    assert_error(client.get("/api/admin/me", headers=auth), 401, "auth.invalid_token")
    assert client.get("/api/admin/me").status_code == 200


# --- sign-in rate limit -----------------------------------------------------------------------


def test_login_rate_limit(tmp_path: Path, database_url: str) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        secret_key=SECRET,
        login_attempts_per_minute=3,
    )
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as client:
        add_user(app)
        for _ in range(3):  # cheap attempts (no form token) count too
            assert_error(client.post(LOGIN_PATH, data={"name": "alice"}), 403, "auth.csrf")
        r = login(client)  # even the right password now waits
        details = assert_error(r, 429, "rate_limited")
        assert details["limit_per_minute"] == 3 and int(r.headers["retry-after"]) >= 1
        assert SESSION_COOKIE not in set_cookie_headers(r)
        page = login(client, headers=HTML)
        assert page.status_code == 429 and "Too many sign-in attempts" in page.text
        # Other endpoints are not affected.
        assert client.get(LOGIN_PATH).status_code == 200


# --- production refuses the default secret ----------------------------------------------------


def test_production_refuses_a_default_or_short_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("LOOKALIKE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env either
    with pytest.raises(ValidationError, match="LOOKALIKE_SECRET_KEY"):
        Settings(environment="production")
    with pytest.raises(ValidationError, match="LOOKALIKE_SECRET_KEY"):
        Settings(environment="production", secret_key="short")
    assert Settings(environment="production", secret_key=SECRET).secret_key == SECRET
    assert Settings().secret_key == DEV_SECRET  # development keeps working out of the box

    # `lookalike serve` refuses to start: one line, exit 2, nothing served.
    monkeypatch.setenv("LOOKALIKE_ENVIRONMENT", "production")
    monkeypatch.setattr(cli, "run_server", lambda *a, **k: pytest.fail("server started"))
    monkeypatch.setattr("sys.argv", ["lookalike", "serve"])
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main()
    finally:
        get_settings.cache_clear()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "settings.invalid" in err and "LOOKALIKE_SECRET_KEY" in err


def _spare_bits(last: str) -> str:
    """Another base64url character that decodes to the same bits as the last character of a
    32-byte digest's encoding (only its top 4 of 6 bits carry data)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return alphabet[alphabet.index(last) ^ 1]
