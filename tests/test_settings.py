"""Settings: every field is documented, and LOOKALIKE_* variables are honoured."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from lookalike.config import Settings, get_settings


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No LOOKALIKE_* variable or .env file from the caller leaks in; the cached process-wide
    settings are rebuilt before and after."""
    for name in list(os.environ):
        if name.startswith("LOOKALIKE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_every_setting_is_documented() -> None:
    undocumented = [
        name
        for name, field in Settings.model_fields.items()
        if not (field.description and len(field.description.strip()) >= 10)
    ]
    assert not undocumented, f"Settings without a description: {undocumented}"


def test_defaults() -> None:
    s = Settings()
    assert s.home == Path("lookalike-data")
    assert s.backbone == "face"
    assert 0 < s.test_fraction < 1


def test_home_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path / "data"))
    assert Settings().home == tmp_path / "data"
    assert get_settings().home == tmp_path / "data"


def test_other_fields_from_environment_and_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOOKALIKE_NEAREST_K", "9")
    monkeypatch.setenv("LOOKALIKE_FLIP_TTA", "false")
    (tmp_path / ".env").write_text("LOOKALIKE_SEED=42\nLOOKALIKE_NEAREST_K=3\n")
    s = Settings()
    assert (s.nearest_k, s.flip_tta, s.seed) == (9, False, 42)  # environment beats .env


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOOKALIKE_NEAREST_K", "0"), ("LOOKALIKE_TEST_FRACTION", "1.5"), ("LOOKALIKE_SEED", "x")],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
