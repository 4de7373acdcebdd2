"""The analytics tests' shared seeded log: ``board``, one per database for the whole package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.analytics import LOG, Dashboard, dashboard, database, seed


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def board(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """The seeded log behind a running app (read-only tests share it), per database."""
    folder = tmp_path_factory.mktemp(f"analytics_{request.param}")
    pg = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with database(request.param, folder, pg) as url:
        seed(url, LOG)
        with dashboard(folder / "home", url, drift_threshold=0.7) as d:
            yield d
