"""The web API tests' fixtures: the trained model, a data dir and database per test, a client.

``trained`` is the session's small real model (``support.api.trained_home``), never written to.
``settings`` gives each test a data dir of its own that links to it (the trained parts are
shared, read-only) with its own object store and its own database: the ``database_url``
fixture, so such a test runs on SQLite and on PostgreSQL. The database must never be the
trained template's own (``lookalike.sqlite3`` in the linked dir is shared). A module whose
tests need another data dir or database overrides ``settings`` (e.g. a SQLite file of its own,
or a copied data dir for a test that trains); ``client`` then follows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.api import Orl, TestClient, api_settings, client_for, linked_home, trained_home

from lookalike.config import Settings


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Path:
    """The trained data dir (built once per session; never written to by tests)."""
    return trained_home(tmp_path_factory, orl)


@pytest.fixture
def settings(trained: Path, tmp_path: Path, database_url: str) -> Settings:
    """A linked data dir of the test's own and a fresh database (SQLite, then PostgreSQL)."""
    return api_settings(linked_home(trained, tmp_path / "home"), database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient on a fresh app for ``settings`` (server errors raise in the test)."""
    with client_for(settings) as c:
        yield c
