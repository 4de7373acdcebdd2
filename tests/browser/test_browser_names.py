"""The ``/names`` page in a real browser (Debian's Chromium via Playwright) against the real
server: a Pokemon name generator in the registry, the quote of the day from a real quotes
API on loopback. Screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from support.api import SECRET
from support.browser import running_server
from support.names import names_home, pokemon, register_and_promote, trained_pokemon
from support.quotes import QuoteServer

from lookalike.config import Settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def quotes() -> Iterator[QuoteServer]:
    with QuoteServer().running() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, quotes: QuoteServer) -> Iterator[str]:
    from lookalike.api import create_app

    template, _, info = trained_pokemon(tmp_path_factory)
    home = names_home(template, tmp_path_factory.mktemp("browser_names") / "home")
    settings = Settings(
        home=home,
        secret_key=SECRET,
        rate_limit_per_minute=0,
        quote_url=quotes.url("/quote"),
        quote_text_field="quote.text",
        quote_author_field="quote.author",
    )
    register_and_promote(settings, info)
    with running_server(create_app(settings)) as base:
        yield base


def test_seven_names_and_the_quote_of_the_day(page: Any, server: str, quotes: QuoteServer) -> None:
    page.goto(server + "/names")
    expect(page.locator("#quote-text")).to_have_text(quotes.quote["text"])
    expect(page.locator("#quote-author")).to_have_text(quotes.quote["author"])

    slider = page.locator("#count")
    slider.focus()
    page.keyboard.press("Home")
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    expect(slider).to_have_value("7")
    expect(page.locator("#count-value")).to_have_text("7")

    with page.expect_response(lambda r: "/api/names?" in r.url) as info:
        page.get_by_role("button", name="Generate").click()
    assert info.value.status == 200
    assert "count=7" in info.value.url
    items = page.locator("#names-list li")
    expect(items).to_have_count(7)
    names = [text.strip() for text in items.all_inner_texts()]
    assert len(set(names)) == 7 and all(names)
    assert not {n.lower() for n in names} & set(pokemon().names)
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#status")).to_have_text("7 names invented.")


def test_a_refused_prefix_is_explained(page: Any, server: str) -> None:
    page.goto(server + "/names")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#names-list li").first).to_be_visible()  # names from before
    page.locator("#prefix").fill("Zoë")
    page.get_by_role("button", name="Generate").click()
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("never saw")
    assert error.inner_text().strip()[0].isupper()  # a sentence
    expect(page.locator("#names-list li")).to_have_count(0)  # the old list is gone
    expect(page.locator("#names-meta")).to_have_text("")
