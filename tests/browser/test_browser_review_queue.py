"""The review queue page (/admin/review) in a real browser (Debian's Chromium via Playwright)
against the real server: relabel a photo with the keyboard, delete one, undo a decision, see
the rows in the database, then retrain and see the decisions in the dataset it trained on.

One server per module on a data dir with planted problems (``support.review.flawed_home``:
a mislabelled photo and a near-duplicate, the dataset check's report written), one admin
user and one visitor's low-confidence photo kept with consent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from support.browser import ARTIFACTS, phone_page, running_server
from support.review import DUPLICATE, PLANTED, Orl, flawed_home, kept_photo

from lookalike import accounts
from lookalike.config import Settings
from lookalike.data.store import DatasetStore
from lookalike.db import ModelVersion, init_db, make_engine, session_factory
from lookalike.db.models import ReviewDecision
from lookalike.retrain import retrain

pytestmark = pytest.mark.browser

NAME = "alice"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Settings:
    flawed = flawed_home(tmp_path_factory.mktemp("browser_review_queue"), orl)
    settings = Settings(
        home=flawed.home,
        backbone="face",
        secret_key="browser-review-queue-secret-0123456789",
        rate_limit_per_minute=0,
        review_low_confidence_rate=1.0,
    )
    url = settings.effective_database_url
    init_db(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        accounts.create_user(session, NAME, PASSWORD)
        session.commit()
    kept_photo(settings, engine, orl["s4"][9], best_label="s1", probability=0.2)
    engine.dispose()
    return settings


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    from lookalike.api import create_app

    with running_server(create_app(settings)) as base:
        yield base


def decisions(settings: Settings) -> list[ReviewDecision]:
    engine = make_engine(settings.effective_database_url)
    try:
        with session_factory(engine)() as session:
            rows = list(session.scalars(select(ReviewDecision).order_by(ReviewDecision.id)))
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def sha_of(settings: Settings, source: str) -> str:
    return next(
        r.sha256 for r in DatasetStore(settings).load().images.values() if r.source == source
    )


def sign_in(page: Any, server: str) -> None:
    page.goto(server + "/admin/review")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Freview$"))
    page.fill("#login-name", NAME)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(server + "/admin/review")


def ready(page: Any, loads: int) -> None:
    root = page.locator("#review-page")
    expect(root).to_have_attribute("data-loads", str(loads))
    expect(root).to_have_attribute("data-state", "ready")


def test_relabel_delete_undo_with_the_keyboard_then_retrain(
    page: Any, server: str, settings: Settings
) -> None:
    assert page.request.post(server + "/api/admin/review/decisions", data={}).status == 401
    planted, duplicate = sha_of(settings, PLANTED), sha_of(settings, DUPLICATE)
    sign_in(page, server)
    ready(page, 1)
    expect(page.locator("#nav-review")).to_have_attribute("aria-current", "page")
    expect(page.locator("#review-keys")).to_contain_text("R relabel")
    items = page.locator("li.review-item")
    first = items.first
    expect(first).to_have_attribute("data-id", f"likely_mislabelled:{planted}")
    expect(first).to_contain_text("s2")  # the suggested label
    expect(page.locator(".review-group h3").first).to_contain_text("Likely mislabelled")
    expect(first.locator("img")).to_have_js_property("complete", True)
    assert first.locator("img").evaluate("img => img.naturalWidth") > 0  # the photo is served

    # Relabel with the keyboard: move down and back up, R, the suggestion is offered, Enter.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    expect(first).to_be_focused()
    page.keyboard.press("r")
    dialog = page.locator("#relabel-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#relabel-input")).to_have_value("s2")
    page.keyboard.press("Enter")
    ready(page, 2)
    expect(page.locator("#review-status")).to_contain_text("Decided: relabel \u2192 s2")
    decided = page.locator(f'li[data-id="likely_mislabelled:{planted}"]')
    expect(decided).to_have_attribute("data-pending", "relabel")
    expect(decided).to_contain_text("by alice")

    # Delete the near-duplicate: select it, D.
    page.locator(f'li[data-id="near_duplicate:{duplicate}"] img').click()
    page.keyboard.press("d")
    ready(page, 3)
    expect(page.locator(f'li[data-id="near_duplicate:{duplicate}"]')).to_have_attribute(
        "data-pending", "delete"
    )

    # Keep the visitor's photo, then undo that: the photo shows no decision again.
    visitor = page.locator('li[data-kind="low_confidence"]')
    visitor.locator("img").click()
    page.keyboard.press("k")
    ready(page, 4)
    expect(visitor).to_have_attribute("data-pending", "keep")
    visitor.locator("img").click()
    page.keyboard.press("u")
    ready(page, 5)
    expect(page.locator("#review-status")).to_contain_text("Undone")
    expect(visitor).not_to_have_attribute("data-pending", "keep")
    expect(page.locator("#review-error")).to_be_hidden()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_review_queue_decided.png"), full_page=True)

    rows = decisions(settings)
    assert [(r.action, r.actor, r.sha256 or "visitor") for r in rows] == [
        ("relabel", NAME, planted),
        ("delete", NAME, duplicate),
        ("keep", NAME, "visitor"),
    ]
    assert (rows[0].label_before, rows[0].label_after) == ("s1", "s2")
    assert rows[2].undone_by == NAME and rows[2].undone_at is not None
    assert all(r.applied_at is None for r in rows)
    catalog = DatasetStore(settings).load()
    assert catalog.images[planted].label == "s1" and duplicate in catalog.images  # not yet

    # The next retrain applies them: the dataset it trains on has the decisions.
    result = retrain(settings, actor="test")
    catalog = DatasetStore(settings).load()
    assert catalog.images[planted].label == "s2"
    assert duplicate not in catalog.images
    rows = decisions(settings)
    assert [r.applied_at is not None for r in rows] == [True, True, False]
    engine = make_engine(settings.effective_database_url)
    with session_factory(engine)() as session:
        version = session.get(ModelVersion, result.version)
        trained_on = version.dataset_revision if version else None
    assert trained_on is not None and trained_on >= (rows[0].applied_revision or 0) > 0
    engine.dispose()

    # The page: applied decisions leave the queue, and can no longer be undone.
    page.click("#review-reload")
    ready(page, 6)
    expect(page.locator(f'li[data-id="likely_mislabelled:{planted}"]')).to_have_count(0)
    expect(page.locator(f'li[data-id="near_duplicate:{duplicate}"]')).to_have_count(0)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    refused = page.request.post(
        server + f"/api/admin/review/decisions/{rows[0].id}/undo", headers={"X-CSRF-Token": token}
    )
    assert refused.status == 409 and refused.json()["error"]["code"] == "review.already_applied"


def test_the_queue_fits_a_phone(browser: Any, server: str, request: pytest.FixtureRequest) -> None:
    for page in phone_page(browser, request.node.name):
        sign_in(page, server)
        expect(page.locator("#review-page")).to_have_attribute("data-state", "ready")
        expect(page.locator("li.review-item").first).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
