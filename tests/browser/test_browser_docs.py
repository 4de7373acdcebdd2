"""The API docs page works offline: Swagger UI's files come from the app, not a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.browser import running_server

from lookalike.config import Settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from lookalike.api import create_app

    home = tmp_path_factory.mktemp("docs") / "home"
    with running_server(create_app(Settings(home=home, rate_limit_per_minute=0))) as base:
        yield base


def test_api_docs_render_without_the_internet(page: Any, server: str, tmp_path: Path) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(server + "/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("lookalike")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert page.get_by_text("/api/predictions", exact=True).count() > 0
    outside = [url for url in requested if not url.startswith(server)]
    assert outside == [], outside  # nothing from a CDN
    assert any("/api/docs/assets/swagger-ui-bundle.js" in url for url in requested)
