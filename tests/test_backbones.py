"""The backbone registry, the deterministic ``test`` backbone and lazy model loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.errors import InvalidInput
from lookalike.vision.backbones import (
    Analysis,
    TestBackbone,
    create_backbone,
    list_backbones,
    register_backbone,
)


def variant(rgb: np.ndarray) -> np.ndarray:
    """The same picture slightly cropped and brightened."""
    h, w = rgb.shape[:2]
    crop = rgb[h // 20 :, : w - w // 20].astype(np.int16) + 15
    return np.clip(crop, 0, 255).astype(np.uint8)


def test_registry_lists_the_builtin_backbones() -> None:
    backbones = list_backbones()
    assert {"face", "image", "test"} <= set(backbones)
    assert all(isinstance(d, str) and d for d in backbones.values())
    assert list(backbones) == sorted(backbones)


def test_create_backbone_builds_the_right_class(tmp_path: Path) -> None:
    from lookalike.vision.efficientnet import ImageBackbone
    from lookalike.vision.faces import FaceBackbone

    settings = Settings(home=tmp_path)
    for name, cls in (("face", FaceBackbone), ("image", ImageBackbone), ("test", TestBackbone)):
        backbone = create_backbone(name, settings)
        assert type(backbone) is cls
        assert backbone.id == name
        assert backbone.settings is settings
        assert backbone.key.startswith(f"{name}@{backbone.version}")
        assert backbone.dim > 0
    assert create_backbone("face", settings).uses_faces
    assert not create_backbone("image", settings).uses_faces


def test_unknown_backbone_lists_the_available_ones() -> None:
    with pytest.raises(InvalidInput) as info:
        create_backbone("nope")
    err = info.value
    assert err.code == "backbone.unknown"
    assert err.status == 400
    assert err.details["backbone"] == "nope"
    assert {"face", "image", "test"} <= set(err.details["available"])
    for name in ("face", "image", "test"):
        assert name in err.message
    assert "'nope'" in err.message
    assert err.to_dict()["error"]["code"] == "backbone.unknown"


def test_register_backbone_adds_a_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    from lookalike.vision import backbones

    monkeypatch.setattr(backbones, "_REGISTRY", dict(backbones._REGISTRY))
    register_backbone("extra", "An extra one")(TestBackbone)
    assert list_backbones()["extra"] == "An extra one"
    assert isinstance(create_backbone("extra"), TestBackbone)


def test_test_backbone_is_deterministic_and_normalised(
    nonfaces: dict[str, np.ndarray],
) -> None:
    images = [nonfaces[name] for name in ("coffee", "chelsea", "rocket")]
    first = TestBackbone().embed_batch(images)
    again = TestBackbone().embed_batch(images)  # a new instance: same projection
    assert first.shape == (3, TestBackbone.dim)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(first[0], first[1])


def test_test_backbone_analyze_embeds_the_whole_image(nonfaces: dict[str, np.ndarray]) -> None:
    backbone = TestBackbone()
    result = backbone.analyze(nonfaces["chelsea"])
    assert isinstance(result, Analysis)
    assert result.faces == []
    assert result.face_index is None
    assert result.face is None
    assert backbone.detect(nonfaces["chelsea"]) == []
    np.testing.assert_array_equal(result.vector, backbone.embed_batch([nonfaces["chelsea"]])[0])


def test_test_backbone_similar_images_are_closer(nonfaces: dict[str, np.ndarray]) -> None:
    backbone = TestBackbone()
    names = ("coffee", "chelsea", "rocket", "astronaut")
    originals = backbone.embed_batch([nonfaces[n] for n in names])
    variants = backbone.embed_batch([variant(nonfaces[n]) for n in names])
    similarity = variants @ originals.T
    for i, name in enumerate(names):
        others = np.delete(similarity[i], i)
        assert similarity[i, i] > others.max(), name
        assert similarity[i, i] > 0.6, name


LAZY_CHECK = """
import sys
from pathlib import Path
from lookalike.config import Settings
import lookalike.vision.backbones, lookalike.vision.faces, lookalike.vision.efficientnet
from lookalike.vision.backbones import create_backbone, list_backbones

home = Path(sys.argv[1])
list_backbones()
made = [create_backbone(name, Settings(home=home)) for name in ("face", "image", "test")]
heavy = [m for m in ("onnxruntime", "torch") if m in sys.modules]
assert not heavy, f"imported at creation: {heavy}"
assert all(getattr(b, "_session", None) is None for b in made), "a session was opened"
assert not home.exists() or not any(home.rglob("*")), "files were written"
print("ok")
"""


def test_creating_backbones_loads_no_model(tmp_path: Path) -> None:
    """Importing the modules and creating backbones must not import onnxruntime or torch."""
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-c", LAZY_CHECK, str(home)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
