"""Admin sign-in in a real browser (Debian's Chromium via Playwright) against the real server.

One server per module with an empty data directory (no model is needed) and one admin user.
Every test leaves a screenshot in ``tests/artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser import ARTIFACTS, running_server

from lookalike import accounts
from lookalike.config import Settings
from lookalike.db import init_db, make_engine, session_factory

pytestmark = pytest.mark.browser

NAME = "alice"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from lookalike.api import create_app

    settings = Settings(
        home=tmp_path_factory.mktemp("browser_admin") / "home",
        secret_key="browser-admin-secret-0123456789abcdef",
        rate_limit_per_minute=0,
    )
    url = settings.effective_database_url
    init_db(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        accounts.create_user(session, NAME, PASSWORD)
    engine.dispose()
    with running_server(create_app(settings)) as base:
        yield base


@pytest.fixture
def page_options() -> dict[str, Any]:
    return {"viewport": {"width": 1100, "height": 800}}


def sign_in(page: Any, name: str, password: str) -> None:
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-submit")


def test_admin_sign_in_and_out(page: Any, server: str) -> None:
    # Anonymous: the admin page sends you to the sign-in form, remembering where you were.
    page.goto(server + "/admin")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin$"))
    expect(page.locator("#login-form")).to_be_visible()

    sign_in(page, NAME, "not the right password")
    expect(page.locator("#login-error")).to_have_text("Wrong name or password.")
    expect(page.locator("#login-name")).to_have_value(NAME)  # kept; the password is not
    expect(page.locator("#login-password")).to_have_value("")

    sign_in(page, NAME, PASSWORD)
    expect(page).to_have_url(server + "/admin")
    expect(page.locator("#signed-in-as")).to_contain_text(f"Signed in as {NAME}")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "lookalike_admin"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""  # nothing readable by scripts
    me = page.goto(server + "/api/admin/me")
    assert me is not None and me.json()["name"] == NAME
    page.goto(server + "/admin")
    expect(page.locator("#logout")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_admin_signed_in.png"), full_page=True)

    page.click("#logout")
    expect(page).to_have_url(server + "/admin/login")
    assert not [c for c in page.context.cookies() if c["name"] == "lookalike_admin"]
    page.goto(server + "/admin")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin$"))
