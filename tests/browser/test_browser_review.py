"""The contributions review page (/admin/contributions) in a real browser (Debian's Chromium
via Playwright) against the real server.

One server per module with an empty data directory, one admin user and three contributions
seeded straight into its database: one enrolled and approved, one enrolled but held for
review, one refused. Every test leaves a screenshot in ``tests/artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser import ARTIFACTS, running_server

from lookalike import accounts
from lookalike.config import Settings
from lookalike.db import Contribution, init_db, make_engine, session_factory, utcnow

pytestmark = pytest.mark.browser

NAME = "alice"
PASSWORD = "correct horse battery staple"
HELD_REASON = "This face is already in the gallery under another name: an admin has to approve it."


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(
        home=tmp_path_factory.mktemp("browser_review") / "home",
        secret_key="browser-review-secret-0123456789abcdef",
        rate_limit_per_minute=0,
    )
    url = settings.effective_database_url
    init_db(url)
    engine = make_engine(url)
    now = utcnow()
    with session_factory(engine)() as session:
        accounts.create_user(session, NAME, PASSWORD)
        session.add_all(
            [
                Contribution(
                    id="a" * 32,
                    display_name="Ada Approved",
                    media="video",
                    sources=[],
                    status="enrolled",
                    progress=1.0,
                    crops=5,
                    approved=True,
                    deletion_token_hash="1" * 64,
                    created_at=now - timedelta(hours=1),
                    updated_at=now - timedelta(hours=1),
                ),
                Contribution(
                    id="b" * 32,
                    display_name="Hal Held",
                    media="photos",
                    sources=[],
                    status="enrolled",
                    progress=1.0,
                    crops=4,
                    approved=False,
                    reason_code="contribution.review",
                    reason=HELD_REASON,
                    deletion_token_hash="2" * 64,
                    created_at=now - timedelta(hours=3),
                    updated_at=now - timedelta(hours=3),
                ),
                Contribution(
                    id="c" * 32,
                    display_name="Rex Refused",
                    media="video",
                    sources=[],
                    status="refused",
                    progress=1.0,
                    crops=0,
                    approved=True,
                    reason_code="contribution.no_face",
                    reason="No face was found in the video.",
                    deletion_token_hash="3" * 64,
                    created_at=now - timedelta(hours=2),
                    updated_at=now - timedelta(hours=2),
                ),
            ]
        )
        session.commit()
    engine.dispose()
    return settings


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    from lookalike.api import create_app

    with running_server(create_app(settings)) as base:
        yield base


@pytest.fixture
def page_options() -> dict[str, Any]:
    # csp_errors: the page fails on any Content-Security-Policy violation (no inline scripts).
    return {"viewport": {"width": 1100, "height": 800}, "csp_errors": True}


def db_row(settings: Settings, contribution_id: str) -> Contribution | None:
    engine = make_engine(settings.effective_database_url)
    try:
        with session_factory(engine)() as session:
            row = session.get(Contribution, contribution_id)
            if row is not None:
                session.expunge(row)
            return row
    finally:
        engine.dispose()


def sign_in(page: Any, server: str) -> None:
    page.goto(server + "/admin/contributions")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Fcontributions$"))
    page.fill("#login-name", NAME)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(server + "/admin/contributions")


def ready(page: Any, loads: int) -> None:
    """Wait until the page has finished its ``loads``-th load of the list."""
    root = page.locator("#contributions-page")
    expect(root).to_have_attribute("data-loads", str(loads))
    expect(root).to_have_attribute("data-state", "ready")


def test_anonymous_is_sent_to_sign_in(page: Any, server: str) -> None:
    page.goto(server + "/admin/contributions")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Fcontributions$"))
    expect(page.locator("#login-form")).to_be_visible()
    api = page.request.get(server + "/api/admin/contributions")
    assert api.status == 401


def test_review_approve_and_delete(page: Any, server: str, settings: Settings) -> None:
    sign_in(page, server)
    ready(page, 1)
    nav = page.locator("#nav-contributions")
    expect(nav).to_have_text("Contributions")
    expect(nav).to_have_attribute("aria-current", "page")

    rows = page.locator("#contributions-table tbody tr")
    expect(rows).to_have_count(3)
    held = rows.nth(0)  # held ones first
    expect(held).to_have_attribute("data-id", "b" * 32)
    expect(held.locator("th")).to_have_text("Hal Held")
    expect(held.locator("td.review")).to_contain_text("Held for review")
    expect(held.locator("td.review")).to_contain_text(HELD_REASON)
    expect(held.locator("td.media")).to_have_text("Photos")
    expect(held.locator("td.crops")).to_have_text("4")
    expect(held.get_by_role("button", name="Approve Hal Held")).to_be_visible()
    # Approve is offered only for held, enrolled contributions; Delete for every one.
    expect(page.locator('#contributions-table button[data-action="approve"]')).to_have_count(1)
    expect(page.locator('#contributions-table button[data-action="delete"]')).to_have_count(3)
    refused = rows.filter(has_text="Rex Refused")
    expect(refused.locator("td.status-cell")).to_have_text("Refused")
    expect(refused.locator("td.review")).to_have_text("No face was found in the video.")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_review_list.png"), full_page=True)

    # Held only: just the held one (keyboard: focus the checkbox and press Space).
    page.focus("#held-only")
    page.keyboard.press("Space")
    expect(page.locator("#held-only")).to_be_checked()
    ready(page, 2)
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_have_attribute("data-id", "b" * 32)
    page.screenshot(path=str(ARTIFACTS / "test_review_held_only.png"), full_page=True)
    page.uncheck("#held-only")
    ready(page, 3)
    expect(rows).to_have_count(3)

    # Approve: it shows approved, and the database says so.
    held.get_by_role("button", name="Approve Hal Held").click()
    ready(page, 4)
    expect(page.locator("#contributions-status")).to_contain_text("Hal Held is approved")
    expect(page.locator("#contributions-error")).to_be_hidden()
    approved = page.locator(f'#contributions-table tr[data-id="{"b" * 32}"]')
    expect(approved).to_have_attribute("data-approved", "true")
    expect(approved.locator("td.review")).to_have_text("Approved")
    expect(page.locator('#contributions-table button[data-action="approve"]')).to_have_count(0)
    row = db_row(settings, "b" * 32)
    assert row is not None and row.approved is True and row.reason_code is None

    # Delete, cancelled: nothing happens.
    target = page.locator(f'#contributions-table tr[data-id="{"c" * 32}"]')
    target.get_by_role("button", name="Delete Rex Refused").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_have_text(
        "Delete every copy of Rex Refused? This cannot be undone."
    )
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(rows).to_have_count(3)
    assert db_row(settings, "c" * 32) is not None

    # Delete, confirmed: gone from the page and from the database.
    target.get_by_role("button", name="Delete Rex Refused").click()
    expect(dialog).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "test_review_delete_dialog.png"), full_page=True)
    page.click("#confirm-ok")
    expect(dialog).to_be_hidden()
    ready(page, 5)
    expect(page.locator("#contributions-status")).to_contain_text(
        "Deleted every copy of Rex Refused."
    )
    expect(rows).to_have_count(2)
    expect(target).to_have_count(0)
    assert db_row(settings, "c" * 32) is None
    assert db_row(settings, "a" * 32) is not None

    # A refusal shows the API's message in the page (the row was deleted elsewhere).
    page.request.delete(
        server + f"/api/admin/contributions/{'a' * 32}",
        headers={"X-CSRF-Token": page.locator('meta[name="csrf-token"]').get_attribute("content")},
    )
    gone = page.locator(f'#contributions-table tr[data-id="{"a" * 32}"]')
    gone.get_by_role("button", name="Delete Ada Approved").click()
    page.click("#confirm-ok")
    ready(page, 6)
    error = page.locator("#contributions-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Could not delete Ada Approved: No contribution with that id")
    expect(rows).to_have_count(1)
