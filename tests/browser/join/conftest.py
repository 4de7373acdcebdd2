"""Fixtures of the /join and /forget browser tests: Chromium with a fake webcam playing a real
face video, and the app with its job queue consumed beside uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import (
    chromium_args,
    launched_chromium,
    running_server,
)
from support.browser import phone_page as phone_context
from support.media import video_to_y4m

from lookalike.config import Settings


@pytest.fixture(scope="module")
def y4m(tmp_path_factory: pytest.TempPathFactory, pyfeat: dict[str, Path]) -> Path:
    return video_to_y4m(pyfeat["single_face.mp4"], tmp_path_factory.mktemp("webcam") / "face.y4m")


@pytest.fixture(scope="module")
def browser(y4m: Path) -> Iterator[Any]:
    with launched_chromium(chromium_args(y4m)) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def server(trained: Settings) -> Iterator[str]:
    """The real app on ``trained``, its job queue (in memory) consumed by threads beside
    uvicorn, as ``lookalike serve`` does: contributions are queued, then processed."""
    from huey import MemoryHuey
    from huey.consumer import Consumer

    from lookalike.api import create_app
    from lookalike.api.state import app_state
    from lookalike.jobs import Jobs

    class GuestConsumer(Consumer):
        def _set_signal_handlers(self) -> None:
            pass  # pytest owns the signals

    app = create_app(trained)
    jobs = Jobs(trained, MemoryHuey("browser-join"))
    app_state(app)._jobs = jobs
    consumer = GuestConsumer(jobs.huey, workers=1, periodic=False, max_delay=0.2)
    consumer.start()
    try:
        with running_server(app) as base:
            yield base
    finally:
        consumer.stop(graceful=True)


@pytest.fixture
def page_options() -> dict[str, Any]:
    return {
        "csp_errors": True,
        "permissions": ["camera", "clipboard-read", "clipboard-write"],
        "viewport": {"width": 1280, "height": 900},
    }


@pytest.fixture
def phone_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from phone_context(browser, request.node.name, permissions=["camera"])
