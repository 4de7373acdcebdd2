"""Shared set-up for the name generator tests (no tests here).

The Pokemon corpus is trained on once per session (a short run: enough to beat the bigram
baseline) and saved as version ``n0001`` in a template data dir. Tests that need the
registry get a data dir of their own that links to it, and register + promote ``n0001`` in
their own database.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lookalike.config import Settings
from lookalike.names.corpus import Corpus, load_corpus
from lookalike.names.store import WEIGHTS_FILE, NamesInfo, artifact_path, save_names_model
from lookalike.names.train import FitResult, HyperParameters, fit
from lookalike.registry import Registry

# Short but real: early stopping with a small patience; the best epoch comes in well
# under the cap on the Pokemon names.
TEST_PARAMS = HyperParameters(max_epochs=12, patience=3, seed=0)

_TRAINED: dict[str, Any] = {}


def pokemon() -> Corpus:
    return load_corpus("pokemon", max_names=10_000, max_chars=64)


def trained_pokemon(factory: pytest.TempPathFactory) -> tuple[Path, FitResult, NamesInfo]:
    """(template home, fit result, saved info) of the session's Pokemon model."""
    if "home" not in _TRAINED:
        corpus = pokemon()
        result = fit(corpus.names, TEST_PARAMS)
        home = factory.mktemp("names_model") / "home"
        info, _ = save_names_model(
            home,
            result.model,
            list(corpus.names),
            corpus={"name": corpus.name, "sha256": corpus.sha256, "names": len(corpus)},
            hyper_parameters=TEST_PARAMS.to_dict(),
            metrics=result.metrics(),
            created_by="tests",
        )
        _TRAINED.update(home=home, result=result, info=info)
    return _TRAINED["home"], _TRAINED["result"], _TRAINED["info"]


def names_home(template: Path, dest: Path) -> Path:
    """A data dir whose ``names/`` holds a copy of the template's versions."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template / "names", dest / "names")
    return dest


def register_and_promote(settings: Settings, info: NamesInfo, actor: str = "tests") -> None:
    with Registry.open(settings) as registry:
        registry.register(
            kind="names",
            version=info.version,
            artifact=artifact_path(info.version),
            digest=info.files[WEIGHTS_FILE],
            created_by=actor,
            head="gru",
            metrics=info.metrics,
        )
        registry.promote(info.version, reason="tests", actor=actor)
