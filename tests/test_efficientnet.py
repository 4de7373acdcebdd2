"""The ``image`` backbone: EfficientNet-Lite0 exported once to ONNX, served by onnxruntime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage import data

from lookalike.config import Settings
from lookalike.errors import BackboneUnavailable, InvalidInput
from lookalike.vision import efficientnet
from lookalike.vision.backbones import create_backbone, list_backbones
from lookalike.vision.efficientnet import ImageBackbone, preprocess


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image-backbone-home")


@pytest.fixture(scope="session")
def backbone(home: Path) -> ImageBackbone:
    b = ImageBackbone(Settings(home=home))
    b.load()  # exports the ONNX file once for the whole session (~3 s)
    return b


@pytest.fixture(scope="session")
def torch_model() -> Any:
    return efficientnet.load_torch_model()


def variant(rgb: np.ndarray) -> np.ndarray:
    """A slightly different take of the same picture: 6% cropped off, brighter."""
    h, w = rgb.shape[:2]
    dy, dx = h * 6 // 100, w * 6 // 100
    crop = rgb[dy : h - dy // 2, dx // 2 : w - dx].astype(np.int16) + 20
    return np.clip(crop, 0, 255).astype(np.uint8)


def test_registered_and_lazy() -> None:
    assert "image" in list_backbones()
    b = create_backbone("image", Settings(home=Path("unused")))
    assert isinstance(b, ImageBackbone)
    assert (b.id, b.dim, b.uses_faces) == ("image", 1280, False)
    assert b.key == "image@lite0-57934424-1"
    assert b.preprocessing["normalize"] == "(x - 127) / 128"
    assert b.preprocessing["input_size"] == [224, 224]
    code = (
        "import sys, lookalike.vision.efficientnet;"
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_onnx_matches_torch(backbone: ImageBackbone, torch_model: Any) -> None:
    import torch

    x = preprocess([data.chelsea(), data.coffee()])
    with torch.no_grad():
        expected = efficientnet.pooled_features_module(torch_model)(torch.from_numpy(x)).numpy()
    got = backbone._session.run(None, {"input": x})[0]
    assert got.shape == expected.shape == (2, 1280)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        backbone.embed_batch([data.chelsea(), data.coffee()]),
        expected / np.linalg.norm(expected, axis=1, keepdims=True),
        atol=1e-5,
    )


def test_weights_and_normalisation_classify_a_cat(torch_model: Any) -> None:
    import torch

    with torch.no_grad():
        logits = torch_model(torch.from_numpy(preprocess([data.chelsea(), data.coffee()])))
    probs = logits.softmax(dim=1).numpy()
    assert 281 <= probs[0].argmax() <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert probs[0, 281:286].sum() > 0.8
    assert probs[1].argmax() == 967  # espresso


def test_embeddings_deterministic_normalised(backbone: ImageBackbone) -> None:
    images = [data.chelsea(), data.coffee(), data.rocket()]
    a = backbone.embed_batch(images)
    b = backbone.embed_batch(images)
    assert a.shape == (3, 1280)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # batch composition does not change an image's embedding
    np.testing.assert_allclose(backbone.embed_batch(images[1:2])[0], a[1], atol=1e-5)
    single = backbone.analyze(data.chelsea())
    assert single.faces == [] and single.face_index is None
    np.testing.assert_allclose(single.vector, a[0], atol=1e-5)
    assert backbone.embed_batch([]).shape == (0, 1280)


def test_grey_rgba_and_bad_arrays(backbone: ImageBackbone) -> None:
    rgb = data.chelsea()
    grey = rgb.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    out = backbone.embed_batch([grey, rgba, rgb])
    assert out.shape == (3, 1280)
    np.testing.assert_allclose(out[1], out[2], atol=1e-6)  # opaque alpha changes nothing
    with pytest.raises(InvalidInput):
        backbone.embed_batch([rgb.astype(np.float32)])
    with pytest.raises(InvalidInput):
        backbone.embed_batch([np.zeros((4, 4, 2), np.uint8)])


def test_same_picture_closer_than_other_pictures(backbone: ImageBackbone) -> None:
    cat = data.chelsea()
    cat2, coffee, rocket = backbone.embed_batch([variant(cat), data.coffee(), data.rocket()])
    ref = backbone.embed_batch([cat])[0]
    same = float(ref @ cat2)
    assert same > 0.8
    assert same > float(ref @ coffee) + 0.2
    assert same > float(ref @ rocket) + 0.2


def test_second_backbone_reuses_export(
    backbone: ImageBackbone, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = backbone.onnx_path
    assert path == home / "backbones" / "efficientnet-lite0-lite0-57934424-1.onnx"
    before = path.stat().st_mtime_ns

    def no_export(dst: Path) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(efficientnet, "export_onnx", no_export)
    other = ImageBackbone(Settings(home=home))
    other.load()
    assert path.stat().st_mtime_ns == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    np.testing.assert_allclose(
        other.embed_batch([data.coffee()]), backbone.embed_batch([data.coffee()]), atol=1e-6
    )


def test_damaged_export_is_rebuilt(
    backbone: ImageBackbone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake_export(dst: Path) -> None:  # a real export is tested above; copy it instead
        calls.append(dst)
        dst.write_bytes(backbone.onnx_path.read_bytes())

    monkeypatch.setattr(efficientnet, "export_onnx", fake_export)
    damaged = ImageBackbone(Settings(home=tmp_path))
    damaged.onnx_path.parent.mkdir(parents=True)
    damaged.onnx_path.write_bytes(b"not an onnx file")
    damaged.load()
    assert calls == [damaged.onnx_path]
    assert damaged.embed_batch([data.coffee()]).shape == (1, 1280)


def test_missing_torch_says_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "torch" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(BackboneUnavailable, match=r"lookalike\[torch\]") as info:
        ImageBackbone(Settings(home=tmp_path)).load()
    assert info.value.status == 503
    assert not (tmp_path / "backbones").exists() or not any(
        p.suffix == ".onnx" for p in (tmp_path / "backbones").iterdir()
    )
