"""The browser tests' fixtures: Chromium, a checked page, and the public page's server.

``trained`` / ``server``: the 8-person ORL model of ``support.browser.build_home`` in a data dir
of the module's own, served by uvicorn in a thread, one per module (a module with other needs,
e.g. an admin account or a seeded log, brings its own ``server``). ``page`` opens a fresh
context with ``page_options``, which a module overrides (viewport, camera, CSP checks...).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Playwright drives Chromium (the dev extra); without it every test below this folder is skipped.
pytest.importorskip("playwright.sync_api", reason="pip install 'lookalike[dev]'")

from support.browser import (
    STRANGERS,
    build_home,
    checked_page,
    launched_chromium,
    png_bytes,
    running_server,
)

from lookalike.config import Settings

Orl = dict[str, list[Path]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, one per browser test module (a module may bring its own, e.g. with
    a fake webcam)."""
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page_options() -> dict[str, Any]:
    """How ``page`` opens its browser context (``checked_page``'s options): a desktop window,
    and a Content-Security-Policy violation fails the test."""
    return {"csp_errors": True, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def page(
    browser: Any, request: pytest.FixtureRequest, page_options: dict[str, Any]
) -> Iterator[Any]:
    """A fresh context + page for one test: a screenshot named after it afterwards, and the
    test fails on uncaught page errors (and CSP violations, with ``csp_errors``)."""
    yield from checked_page(browser, request.node.name, **page_options)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Settings:
    """A data dir with the 8-person ORL model (``build_home``), one per module."""
    settings, report = build_home(tmp_path_factory.mktemp("browser"), orl)
    assert report.version == "m0001"
    return settings


@pytest.fixture(scope="module")
def server(trained: Settings) -> Iterator[str]:
    """The real app on ``trained``, served by uvicorn in a thread: its base URL."""
    from lookalike.api import create_app

    with running_server(create_app(trained)) as base:
        yield base


@pytest.fixture(scope="module")
def stranger_answers(server: str, orl: Orl) -> dict[str, dict[str, Any]]:
    """The API's answer to photo 1 of every stranger, straight from the API (no browser)."""
    import httpx

    answers = {}
    with httpx.Client(base_url=server, timeout=30) as client:
        for person in STRANGERS:
            files = {"photo": ("s.png", png_bytes(orl[person][0]), "image/png")}
            response = client.post("/api/predictions", files=files)
            assert response.status_code == 201, response.text
            answers[person] = response.json()["answer"]
    assert all(a["kind"] == "lookalike" for a in answers.values()), "a stranger was recognised"
    return answers
