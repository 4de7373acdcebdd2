"""Training end to end on real ORL faces with the real ``face`` backbone, evaluation on the
frozen test set, and model artifacts (atomic save, verified load, the ``current`` pointer).

Importing the ORL photos (the slow part: face detection + embedding) happens once per test
session in ``support.training.orl_face_template``; every module that needs it works on its
own copy.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support.training import KNOWN, TINY, class_folders, copy_home, orl_face_template, quick_import

from lookalike.artifacts import (
    list_versions,
    load_model,
    models_dir,
    save_model,
)
from lookalike.config import Settings
from lookalike.data.importers import ImportReport, import_images
from lookalike.data.splits import SplitStore
from lookalike.errors import DatasetError, ModelUnavailable, NotFound
from lookalike.training.evaluate import evaluate_version as evaluate
from lookalike.training.heads import HEADS
from lookalike.training.train import TrainReport, train

Orl = dict[str, list[Path]]

N_PER_CLASS = 8
# test_fraction 0.2 of 8 photos -> 2 frozen test photos per class.
N_TEST = 2 * len(KNOWN)


# --- end to end with the face backbone --------------------------------------------------------


@pytest.fixture(scope="module")
def face_home(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> tuple[Settings, ImportReport]:
    template, report = orl_face_template(tmp_path_factory, orl)
    home = copy_home(template, tmp_path_factory.mktemp("training") / "home")
    return Settings(home=home, backbone="face"), report


@pytest.fixture(scope="module")
def trained(face_home: tuple[Settings, ImportReport]) -> dict[str, TrainReport]:
    """Three models on the same data: m0001 auto, m0002 logistic, m0003 gallery."""
    settings, _ = face_home
    return {head: train(settings, head=head) for head in ("auto", "logistic", "gallery")}


def test_import_kept_every_orl_photo(face_home: tuple[Settings, ImportReport]) -> None:
    _, report = face_home
    assert report.added == len(KNOWN) * N_PER_CLASS + 2
    assert report.rejected == 0
    assert report.classes[TINY] == 2


@pytest.mark.parametrize("head", ["auto", "logistic", "gallery"])
def test_train_on_orl_is_accurate(trained: dict[str, TrainReport], head: str) -> None:
    report = trained[head]
    if head == "auto":
        assert report.head in HEADS
    else:
        assert report.head == head
    assert report.backbone.startswith("face@")
    assert report.metrics["n"] == N_TEST
    assert report.metrics["accuracy"] >= 0.95
    assert report.metrics["macro_f1"] >= 0.95
    assert report.counts["test"] == {p: 2 for p in KNOWN}
    assert sum(report.counts["train"].values()) + sum(report.counts["val"].values()) == 6 * 12
    # Genuine and impostor SFace scores are far apart on ORL: a real threshold, not the default.
    assert 0.2 < report.threshold < 0.9
    assert not report.failures


def test_versions_are_numbered(
    face_home: tuple[Settings, ImportReport], trained: dict[str, TrainReport]
) -> None:
    settings, _ = face_home
    assert [trained[h].version for h in ("auto", "logistic", "gallery")] == [
        "m0001",
        "m0002",
        "m0003",
    ]
    assert list_versions(settings.home) == ["m0001", "m0002", "m0003"]
    # Training only saves: which version serves is the registry's decision.
    assert not (models_dir(settings.home) / "current").exists()


def test_model_directory_records_everything(
    face_home: tuple[Settings, ImportReport], trained: dict[str, TrainReport]
) -> None:
    settings, _ = face_home
    folder = models_dir(settings.home) / "m0001"
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "model.json"]
    info = json.loads((folder / "model.json").read_text())
    assert info["version"] == "m0001"
    assert info["labels"] == sorted(KNOWN)
    assert TINY not in info["labels"]
    assert info["backbone"] == "face"
    assert info["backbone_key"] == trained["auto"].backbone
    assert info["preprocessing"]["flip_tta"] is True
    assert info["preprocessing"]["detect_side"] == settings.detect_side
    assert info["threshold"] == trained["auto"].threshold
    assert info["open_set"]["genuine"] > 0 and info["open_set"]["impostor"] > 0
    assert info["test_version"] == 1
    assert info["metrics"]["accuracy"] == trained["auto"].metrics["accuracy"]
    assert info["head"] == trained["auto"].head
    assert info["top_k"] == settings.top_k_per_class

    data = (folder / "arrays.npz").read_bytes()
    assert info["files"]["arrays.npz"] == hashlib.sha256(data).hexdigest()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        n_train = sum(info["counts"]["train"].values())
        assert npz["gallery"].shape == (n_train, 128)
        assert npz["gallery_labels"].shape == (n_train,)
        assert set(npz["gallery_labels"]) == set(range(len(KNOWN)))
        np.testing.assert_allclose(np.linalg.norm(npz["gallery"], axis=1), 1.0, atol=1e-4)
        assert any(k.startswith("head_") for k in npz.files)
    assert not list(models_dir(settings.home).glob(".building-*"))


def test_second_train_embeds_nothing(
    face_home: tuple[Settings, ImportReport], trained: dict[str, TrainReport]
) -> None:
    # Import already embedded (and cached) every photo; no train run embeds again.
    n = len(KNOWN) * N_PER_CLASS
    for report in trained.values():
        assert (report.embedded, report.cached) == (0, n)


def test_too_small_classes_are_reported_and_left_out(trained: dict[str, TrainReport]) -> None:
    for report in trained.values():
        assert report.too_few == {TINY: 2}
        assert all(TINY not in counts for counts in report.counts.values())


def test_evaluate_writes_metrics_and_confusion_png(
    face_home: tuple[Settings, ImportReport], trained: dict[str, TrainReport], tmp_path: Path
) -> None:
    settings, _ = face_home
    metrics, paths = evaluate(settings, "m0001", tmp_path / "report")
    assert [p.name for p in paths] == ["metrics.json", "confusion.png"]
    assert all(p.parent == tmp_path / "report" for p in paths)
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].stat().st_size > 2000
    saved = json.loads(paths[0].read_text())
    assert saved == json.loads(json.dumps(metrics))
    for key in ("accuracy", "macro_f1", "per_class", "confusion", "top_losses"):
        assert key in saved
    assert saved["model"] == "m0001" and saved["test_version"] == 1
    # Same model, same frozen test set, same cached embeddings: the numbers training reported.
    assert saved["n"] == N_TEST
    assert saved["accuracy"] == trained["auto"].metrics["accuracy"]
    assert sorted(saved["per_class"]) == sorted(KNOWN)
    for stats in saved["per_class"].values():
        assert 0 <= stats["precision"] <= 1 and 0 <= stats["recall"] <= 1
        assert stats["support"] == 2
    confusion = np.array(saved["confusion"])
    assert confusion.shape == (12, 12)
    assert confusion.sum() == N_TEST
    assert np.trace(confusion) == round(saved["accuracy"] * N_TEST)
    assert isinstance(saved["top_losses"], list)
    assert len(saved["top_losses"]) == N_TEST - np.trace(confusion)

    # Default output folder: reports/<version> under the data dir.
    metrics, paths = evaluate(settings, "m0003")
    assert metrics["model"] == "m0003"
    assert paths[0] == settings.home / "reports" / "m0003" / "metrics.json"


def test_old_model_is_evaluated_on_its_own_test_version(
    face_home: tuple[Settings, ImportReport],
    trained: dict[str, TrainReport],
    tmp_path: Path,
    orl: Orl,
) -> None:
    settings, _ = face_home
    home = copy_home(settings.home, tmp_path / "home")
    # A new person, and two new photos of a known one. A larger test share makes the frozen
    # test set grow for the known person too, so "which test version" changes the answer.
    settings = Settings(home=home, backbone="face", test_fraction=0.3)
    new = class_folders(tmp_path / "new", {"s14": orl["s14"][:5], "s1": orl["s1"][8:]})
    assert import_images(new, settings).added == 7
    report = train(settings)
    assert report.version == "m0004"
    assert report.embedded == 0  # the new photos were embedded by the import

    splits = SplitStore(settings).load()
    assert splits.test_version == 2
    added = splits.test_hashes(2) - splits.test_hashes(1)
    from lookalike.data.store import DatasetStore

    catalog = DatasetStore(settings).load()
    assert {catalog.images[h].label for h in added} == {"s1", "s14"}

    old, _ = evaluate(settings, "m0001", tmp_path / "old")
    assert (old["test_version"], old["n"]) == (1, N_TEST)
    assert old["accuracy"] == trained["auto"].metrics["accuracy"]
    latest, _ = evaluate(settings, "m0004", tmp_path / "new-report")
    assert latest["test_version"] == 2
    assert latest["n"] == N_TEST + len(added)
    assert "s14" in latest["per_class"]


# --- dataset problems (fast `test` backbone: only the plumbing is under test) -------------------


def test_train_on_empty_dataset(settings: Settings) -> None:
    with pytest.raises(DatasetError) as exc:
        train(settings, backbone_name="test")
    assert exc.value.code == "dataset.empty"
    assert "import" in exc.value.message


def test_train_with_one_class(tmp_path: Path, orl: Orl) -> None:
    settings = Settings(home=tmp_path / "home", backbone="test")
    quick_import(settings, tmp_path, {"s1": orl["s1"][:5], "s2": orl["s2"][:2]})
    with pytest.raises(DatasetError) as exc:
        train(settings)
    assert exc.value.code == "dataset.too_few_classes"
    assert exc.value.details["too_few"] == {"s2": 2}
    assert "s2 (2)" in exc.value.message
    assert list_versions(settings.home) == []


def test_class_without_training_photos_is_left_out(tmp_path: Path, orl: Orl) -> None:
    # min_images_per_class=1: a one-photo class has its only photo frozen into the test set.
    # It used to crash training with a KeyError; it is now left out like a too-small class.
    settings = Settings(home=tmp_path / "home", backbone="test", min_images_per_class=1)
    quick_import(
        settings, tmp_path, {"s1": orl["s1"][:5], "s2": orl["s2"][:5], "s3": orl["s3"][:1]}
    )
    report = train(settings)
    assert report.too_few == {"s3": 1}
    assert load_model(settings.home, report.version).info.labels == ["s1", "s2"]
    assert set(report.counts["test"]) == {"s1", "s2"}


def test_train_embeds_once_then_reads_the_cache(tmp_path: Path, orl: Orl) -> None:
    settings = Settings(home=tmp_path / "home", backbone="test")
    quick_import(settings, tmp_path, {p: orl[p][:5] for p in ("s1", "s2", "s3")})
    (settings.home / "cache" / "embeddings.sqlite").unlink()  # as if imported elsewhere
    first = train(settings)
    second = train(settings)
    assert (first.embedded, first.cached) == (15, 0)
    assert (second.embedded, second.cached) == (0, 15)
    assert second.version == "m0002"


def test_unknown_head_is_refused_before_any_work(settings: Settings) -> None:
    from lookalike.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        train(settings, head="nope")  # the dataset is empty too: the head is checked first
    assert exc.value.code == "train.unknown_head"


# --- artifacts -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_home(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Path:
    """4 ORL people x 5 photos imported with the `test` backbone (not trained)."""
    root = tmp_path_factory.mktemp("artifacts")
    settings = Settings(home=root / "home", backbone="test")
    quick_import(settings, root, {p: orl[p][:5] for p in ("s1", "s2", "s3", "s4")})
    return settings.home


@pytest.fixture
def fresh(small_home: Path, tmp_path: Path) -> Callable[[], Settings]:
    def make() -> Settings:
        return Settings(home=copy_home(small_home, tmp_path / "home"), backbone="test")

    return make


def test_save_is_atomic(fresh: Callable[[], Settings]) -> None:
    settings = fresh()
    train(settings)
    model = load_model(settings.home, "m0001")
    model.info.metrics["unserialisable"] = object()  # fails while model.json is written
    with pytest.raises(TypeError):
        save_model(settings.home, model)
    root = models_dir(settings.home)
    assert sorted(p.name for p in root.iterdir()) == ["m0001"]  # nothing half-made
    del model.info.metrics["unserialisable"]
    assert save_model(settings.home, model) == "m0002"
    assert not list(root.glob(".building-*"))
    # Names the registry holds are never reused, even when their directory is gone.
    assert save_model(settings.home, model, reserved={"m0007", "n0009"}) == "m0008"


def test_load_refuses_a_corrupt_artifact(fresh: Callable[[], Settings]) -> None:
    settings = fresh()
    train(settings)
    npz = models_dir(settings.home) / "m0001" / "arrays.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable) as exc:
        load_model(settings.home, "m0001")
    assert exc.value.code == "model.corrupt"
    assert exc.value.details == {"version": "m0001"}

    npz.unlink()
    with pytest.raises(ModelUnavailable) as exc:
        load_model(settings.home, "m0001")
    assert exc.value.code == "model.corrupt"

    (npz.parent / "model.json").write_text("{not json")
    with pytest.raises(ModelUnavailable) as exc:
        load_model(settings.home, "m0001")
    assert exc.value.code == "model.corrupt"


def test_load_missing_version_and_no_model(
    fresh: Callable[[], Settings], settings: Settings
) -> None:
    with pytest.raises(ModelUnavailable) as exc:
        load_model(settings.home, None)
    assert exc.value.code == "model.none"

    trained_settings = fresh()
    train(trained_settings)
    for bad in ("m0099", "../models/m0001", ".", "current"):
        with pytest.raises(NotFound) as nf:
            load_model(trained_settings.home, bad)
        assert nf.value.code == "model.not_found"


def test_loaded_model_answers_like_the_trained_one(fresh: Callable[[], Settings]) -> None:
    settings = fresh()
    report = train(settings)
    model = load_model(settings.home, report.version)
    proba, sims, match = model.classify(model.gallery)
    n_classes = len(model.info.labels)
    assert proba.shape == match.shape == (len(model.gallery), n_classes)
    assert sims.shape == (len(model.gallery), len(model.gallery))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # A gallery photo's own class contains itself (similarity 1): it wins the match score.
    assert (match.argmax(axis=1) == model.gallery_labels).all()
    assert model.info.threshold == report.threshold
