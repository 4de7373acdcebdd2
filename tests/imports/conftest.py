"""The import tests' fixture: the real ``face`` backbone, loaded once for all of them."""

from __future__ import annotations

import pytest

from lookalike.config import Settings
from lookalike.vision.backbones import Backbone, create_backbone


@pytest.fixture(scope="package")
def face(tmp_path_factory: pytest.TempPathFactory) -> Backbone:
    """The real face backbone, loaded once (it folds its model into its own data dir)."""
    backbone = create_backbone("face", Settings(home=tmp_path_factory.mktemp("face-backbone")))
    backbone.load()
    return backbone
