"""Helpers for the /join and /forget browser tests (no tests here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from lookalike.config import Settings
from support.browser import ARTIFACTS, form_fields, photo

Orl = dict[str, list[Path]]

CONTRIBUTOR = "s20"  # an ORL person the model never saw: photos 1-8 join, photo 10 is asked
NAME = "Ada Lovelace"
REFUSED_PERSON = "s21"  # three photos: fewer usable faces than a contribution needs
WEBCAM_NAME = "Grace Hopper"
JOIN_STATES = ("enrolled", "refused")


class ContributionPosts:
    """Records the bodies of ``POST /api/contributions`` (routed, so that blob-backed
    multipart bodies are kept) and the statuses the page read while polling."""

    def __init__(self, page: Any) -> None:
        self.bodies: list[bytes] = []
        self.polled: list[str] = []
        page.route("**/api/contributions", self._record)
        page.on("response", self._polled)

    def _record(self, route: Any, request: Any) -> None:
        if request.method == "POST":
            self.bodies.append(request.post_data_buffer or b"")
        route.continue_()

    def _polled(self, response: Any) -> None:
        if response.request.method == "GET" and "/api/contributions/" in response.url:
            try:
                self.polled.append(str(response.json().get("status")))
            except Exception:  # a 404 or a cut-off body: not a status
                self.polled.append(f"http {response.status}")

    def last(self) -> dict[str, list[bytes]]:
        assert self.bodies, "no POST /api/contributions was sent"
        return form_fields(self.bodies[-1])


def is_contribution_post(response: Any) -> bool:
    return bool(response.request.method == "POST" and response.url.endswith("/api/contributions"))


def is_delete(response: Any) -> bool:
    return bool(response.request.method == "DELETE")


def photo_files(orl: Orl, person: str, indices: range | list[int]) -> list[dict[str, Any]]:
    return [
        {"name": f"{person}-{i + 1}.png", "mimeType": "image/png", "buffer": photo(orl, person, i)}
        for i in indices
    ]


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_result(page: Any, timeout: float = 60_000) -> None:
    expect(page.locator("#result-card")).to_be_visible(timeout=timeout)


def contribution_rows(settings: Settings) -> list[Any]:
    from sqlalchemy import select

    from lookalike.db import Contribution, make_engine, session_factory

    engine = make_engine(settings.effective_database_url)
    try:
        with session_factory(engine)() as session:
            rows = list(session.scalars(select(Contribution)).all())
            for row in rows:
                session.expunge(row)
            return rows
    finally:
        engine.dispose()


def accessible_name(page: Any, selector: str) -> str:
    name: str = page.locator(selector).evaluate(
        "e => (e.labels && e.labels.length ? e.labels[0].textContent"
        " : e.getAttribute('aria-label') || e.textContent).trim()"
    )
    return name
