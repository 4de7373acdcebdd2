"""The admin pages' fixtures: a seeded data dir (``support.dashboard``) and its server, one per
module, with the job worker in threads (as ``lookalike serve`` runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import running_server
from support.dashboard import TIMEZONE, Seed, build_dashboard_home

from lookalike.config import Settings


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, orl: dict[str, list[Path]]
) -> tuple[Settings, Seed]:
    return build_dashboard_home(tmp_path_factory.mktemp("browser_dashboard"), orl)


@pytest.fixture(scope="module")
def app(seeded: tuple[Settings, Seed]) -> Any:
    from lookalike.api import create_app

    settings, _ = seeded
    return create_app(settings)


@pytest.fixture(scope="module")
def server(seeded: tuple[Settings, Seed], app: Any) -> Iterator[str]:
    from lookalike.jobs import Jobs

    settings, _ = seeded
    consumer = Jobs(settings).start_in_background()  # "Retrain now" needs a worker
    try:
        with running_server(app) as base:
            yield base
    finally:
        consumer.stop(graceful=False)


@pytest.fixture(scope="module")
def seed(seeded: tuple[Settings, Seed]) -> Seed:
    return seeded[1]


@pytest.fixture
def page_options() -> dict[str, Any]:
    return {
        "csp_errors": True,
        "viewport": {"width": 1280, "height": 900},
        "accept_downloads": True,
        "timezone_id": TIMEZONE,
    }
