"""Shared set-up for the web API tests (no tests here).

A small real model is trained once per session: ORL people s1..s6, photos 1-6 imported with
the real ``face`` backbone (photos 7-10 are never seen). Every test then gets its own data
directory made of symlinks to that trained one (read-only parts) plus its own object store,
its own database (the ``database_url`` fixture: SQLite and PostgreSQL) and its own app.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lookalike.api import create_app
from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.registry import Registry
from lookalike.retrain import retrain
from support.training import class_folders

with warnings.catch_warnings():
    # Starlette warns that its TestClient will move from httpx to httpx2; httpx works today.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

Orl = dict[str, list[Path]]

PEOPLE = [f"s{i}" for i in range(1, 7)]
IMPORTED = slice(0, 6)  # photos 1-6 of each person; 7-10 are held out
SECRET = "test-secret-key-0123456789"

_TRAINED: dict[str, Path] = {}


def trained_home(factory: pytest.TempPathFactory, orl: Orl) -> Path:
    """The trained data directory (built once per session; never written to by tests)."""
    if "home" not in _TRAINED:
        root = factory.mktemp("api_model")
        source = class_folders(root / "source", {p: orl[p][IMPORTED] for p in PEOPLE})
        home = root / "home"
        settings = Settings(home=home, backbone="face")
        import_images(source, settings)
        retrain(settings, strict=False)
        _TRAINED["home"] = home
    return _TRAINED["home"]


def linked_home(template: Path, dest: Path) -> Path:
    """A data dir for one test: the trained parts linked, objects and database its own."""
    dest.mkdir(parents=True)
    for entry in template.iterdir():
        (dest / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return dest


def api_settings(home: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "backbone": "face",
        "database_url": database_url,
        "secret_key": SECRET,
        "rate_limit_per_minute": 0,
        "contributions_per_hour": 0,
    }
    values.update(overrides)
    settings = Settings(**values)
    if (Path(home) / "models").is_dir():
        serve_champion(settings)
    return settings


def serve_champion(settings: Settings) -> str:
    """Make the newest model of a (linked) data dir the champion in the settings' database."""
    with Registry.open(settings) as registry:  # adopts the linked model directories
        champion = registry.champion()
        if champion is None:
            champion = registry.versions()[0].version
            registry.promote(champion, reason="test setup", actor="test")
    return champion


@contextmanager
def client_for(settings: Settings, *, raise_errors: bool = True) -> Iterator[TestClient]:
    """A TestClient on a fresh app (lifespan run: database created, model warmed)."""
    with TestClient(create_app(settings), raise_server_exceptions=raise_errors) as client:
        yield client


def encode(rgb: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


def objects(settings: Settings) -> list[str]:
    """Every object in the app's object store (relative paths)."""
    root = Path(settings.home) / "objects"
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """``response`` is the one error shape with this status and code; returns its details."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert_error_shape(body)
    assert body["error"]["code"] == code, body
    details: dict[str, Any] = body["error"]["details"]
    return details


def assert_error_shape(body: Any) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, body
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], dict), body
