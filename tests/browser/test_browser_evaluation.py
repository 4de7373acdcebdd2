"""The evaluation page (/admin/evaluation) in a real browser (Debian's Chromium via Playwright)
against the real server: the 8-person ORL model (``trained``, m0001) plus m0002 trained with
the other head, and one admin user. Every test leaves a screenshot in ``tests/artifacts/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser import ARTIFACTS, phone_page, running_server

from lookalike import accounts
from lookalike.artifacts import load_model
from lookalike.config import Settings
from lookalike.db import make_engine, session_factory
from lookalike.retrain import retrain

pytestmark = pytest.mark.browser

NAME = "alice"
PASSWORD = "correct horse battery staple"
ALL_LOADED = """sel => {
  const imgs = [...document.querySelectorAll(sel)];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def server(trained: Settings) -> Iterator[str]:
    from lookalike.api import create_app

    head = "gallery" if load_model(trained.home, "m0001").info.head != "gallery" else "logistic"
    assert retrain(trained, head=head, strict=False).report.version == "m0002"
    engine = make_engine(trained.effective_database_url)
    with session_factory(engine)() as session:
        accounts.create_user(session, NAME, PASSWORD)
    engine.dispose()
    with running_server(create_app(trained)) as base:
        yield base


@pytest.fixture
def page_options() -> dict[str, Any]:
    return {"viewport": {"width": 1100, "height": 800}, "csp_errors": True}


def sign_in(page: Any, server: str, query: str = "") -> None:
    page.goto(server + "/admin/evaluation" + query)
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    page.fill("#login-name", NAME)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(re.compile(r"/admin/evaluation"))


def ready(page: Any, loads: int) -> None:
    root = page.locator("#evaluation-page")
    expect(root).to_have_attribute("data-loads", str(loads))
    expect(root).to_have_attribute("data-state", "ready")


def test_anonymous_is_sent_to_sign_in(page: Any, server: str) -> None:
    page.goto(server + "/admin/evaluation")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Fevaluation$"))
    assert page.request.get(server + "/api/admin/evaluation").status == 401


def test_click_a_confusion_cell_and_see_its_photos(page: Any, server: str) -> None:
    sign_in(page, server)
    ready(page, 1)
    expect(page.locator("#nav-evaluation")).to_have_attribute("aria-current", "page")
    expect(page.locator("#evaluation-error")).to_be_hidden()
    champion = page.locator("#eval-version").input_value()
    assert re.fullmatch(r"m000[12]", champion)
    expect(page.locator("#eval-version option:checked")).to_contain_text("(champion)")
    expect(page.locator("#class-table tbody tr")).to_have_count(8)

    # The matrix: 8 x 8, every number a button; click the first one.
    expect(page.locator("#confusion-table tbody tr")).to_have_count(8)
    buttons = page.locator("#confusion-table .cell-button")
    assert buttons.count() >= 8  # at least one per class (each has test photos)
    cell = buttons.first
    count = int(cell.inner_text())
    expect(page.locator("#cell-photos")).to_be_hidden()
    cell.click()
    expect(cell).to_have_attribute("aria-expanded", "true")
    photos = page.locator("#cell-photos")
    expect(photos).to_be_visible()
    true, predicted = cell.get_attribute("data-true"), cell.get_attribute("data-predicted")
    expect(photos).to_have_attribute("data-true", str(true))
    expect(page.locator("#cell-title")).to_contain_text(f"{count} photo")
    expect(page.locator("#cell-photo-list li")).to_have_count(count)
    page.wait_for_function(ALL_LOADED, arg="#cell-photo-list img")
    widths = page.eval_on_selector_all("#cell-photo-list img", "is => is.map(i => i.naturalWidth)")
    assert len(widths) == count and min(widths) > 0
    alt = page.locator("#cell-photo-list img").first.get_attribute("alt")
    assert alt == f"Test photo of {true}, answered {predicted}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_evaluation_cell_photos.png"), full_page=True)

    # Keyboard: Tab to another number and press Enter; its photos replace the first ones.
    other = buttons.nth(1)
    other.focus()
    page.keyboard.press("Enter")
    expect(other).to_have_attribute("aria-expanded", "true")
    expect(cell).to_have_attribute("aria-expanded", "false")
    expect(photos).to_have_attribute("data-true", str(other.get_attribute("data-true")))
    page.wait_for_function(ALL_LOADED, arg="#cell-photo-list img")
    page.keyboard.press("Enter")  # the same number again closes its photos
    expect(photos).to_be_hidden()


def test_two_versions_side_by_side(page: Any, server: str) -> None:
    sign_in(page, server, "?version=m0002&compare=m0001")
    ready(page, 1)
    expect(page.locator("#eval-version")).to_have_value("m0002")
    expect(page.locator("#eval-compare")).to_have_value("m0001")
    side = page.locator("#side-by-side")
    expect(side).to_be_visible()
    header = page.locator("#side-table thead th")
    expect(header.nth(1)).to_contain_text("m0002")
    expect(header.nth(2)).to_contain_text("m0001")
    # Accuracy, macro-F1, then each class's recall.
    expect(page.locator("#side-table tbody tr")).to_have_count(2 + 8)
    expect(page.locator("#only-version-title")).to_contain_text(
        "Right with m0002, wrong with m0001"
    )
    losses = page.locator("#top-losses li")
    if losses.count():
        page.wait_for_function(ALL_LOADED, arg="#top-losses img")
    else:
        expect(page.locator("#losses-empty")).to_be_visible()

    # Choose nothing to compare with in the form: the side by side goes, the URL follows.
    page.select_option("#eval-compare", "")
    page.click("#eval-show")
    ready(page, 2)
    expect(side).to_be_hidden()
    assert page.url.endswith("?version=m0002&compare=")
    page.go_back()
    ready(page, 3)
    expect(side).to_be_visible()


@pytest.fixture
def phone(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from phone_page(browser, request.node.name)


def test_phone_width(phone: Any, server: str) -> None:
    sign_in(phone, server)
    ready(phone, 1)
    no_scroll = "() => document.scrollingElement.scrollWidth"
    assert phone.evaluate(no_scroll) <= 375  # the matrix scrolls inside its card
    phone.locator("#confusion-table .cell-button").first.tap()
    expect(phone.locator("#cell-photos")).to_be_visible()
    phone.wait_for_function(ALL_LOADED, arg="#cell-photo-list img")
    assert phone.evaluate(no_scroll) <= 375
