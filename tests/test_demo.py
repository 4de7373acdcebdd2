"""`lookalike demo` end to end (without serving): both kinds of answer, as a newcomer sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from lookalike.config import Settings
from lookalike.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_shows_this_is_x_and_lookalikes(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    rows = run_demo(Settings(home=tmp_path / "data"), tmp_path / "source", console)
    gallery, strangers = rows["in the gallery"], rows["strangers"]
    assert (gallery["people"], gallery["photos"]) == (30, 90)
    assert (strangers["people"], strangers["photos"]) == (10, 30)
    # The gallery's people are recognised; strangers are never called someone in it.
    assert gallery["this is X"] >= 88 and gallery["this is someone else"] == 0
    assert strangers["this is X"] == strangers["this is someone else"] == 0
    assert strangers["looks like X"] + strangers["X and Y tie"] == 30
    assert strangers["looks like X"] > 0
    text = console.export_text()
    assert "10 strangers" in text and "30 in the gallery" in text
    assert "You look like" in text
    assert len(text.splitlines()) < 40  # a short summary, not a row per photo
