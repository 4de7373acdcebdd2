"""`lookalike train --head finetune` end to end on 3 ORL people: the fine-tuned network is
saved with the model, registered, judged by the gate against a champion on the same frozen
test set, and served by onnxruntime (no torch loaded)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.training import class_folders

from lookalike.artifacts import backbone_for, load_model, models_dir
from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.kinds import EventKind
from lookalike.registry import Registry
from lookalike.retrain import RetrainResult, retrain

pytest.importorskip("torch")
pytest.importorskip("kornia")

Orl = dict[str, list[Path]]
PEOPLE = ["s1", "s2", "s3"]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on shared cores two threads made each step slower (test_finetune)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tuned(
    tmp_path_factory: pytest.TempPathFactory, orl: Orl
) -> tuple[Settings, RetrainResult, RetrainResult]:
    """A logistic champion, then a fine-tuned challenger (2 epochs) through the gate."""
    root = tmp_path_factory.mktemp("train-finetune")
    settings = Settings(
        home=root / "home", backbone="face", finetune_epochs=2, finetune_batch_size=8
    )
    import_images(class_folders(root / "source", {p: orl[p][:8] for p in PEOPLE}), settings)
    champion = retrain(settings, head="logistic", strict=False)
    challenger = retrain(settings, head="finetune", strict=False)
    return settings, champion, challenger


def test_the_finetuned_model_is_saved_with_its_network(
    tuned: tuple[Settings, RetrainResult, RetrainResult],
) -> None:
    settings, champion, challenger = tuned
    model = load_model(settings.home, challenger.version)
    info = model.info
    assert info.head == "finetune" and challenger.report.head == "finetune"
    assert info.head_params["training"]["epochs_run"] == 2
    assert info.backbone == "face" and info.backbone_key.startswith("face-ft@")
    assert info.backbone_key != load_model(settings.home, champion.version).info.backbone_key
    network = (models_dir(settings.home) / info.version / "network.onnx").read_bytes()
    assert info.files["network.onnx"] == hashlib.sha256(network).hexdigest()
    assert info.backbone_key.startswith(f"face-ft@{info.files['network.onnx'][:12]}+")
    assert backbone_for(info, settings).key == info.backbone_key
    assert info.labels == PEOPLE and info.metrics["n"] > 0


def test_the_gate_decides_on_the_finetuned_challenger(
    tuned: tuple[Settings, RetrainResult, RetrainResult],
) -> None:
    settings, champion, challenger = tuned
    assert challenger.previous == champion.version
    with Registry.open(settings) as registry:
        assert challenger.version in [v.version for v in registry.versions()]
        events = registry.events(version=challenger.version, event_kinds=[EventKind.DECISION])
    assert len(events) == 1


SERVE = """
import json, sys
from pathlib import Path
from lookalike.artifacts import load_model
from lookalike.config import Settings
from lookalike.inference import Predictor

home, version, photo = sys.argv[1:]
settings = Settings(home=home, backbone="face")
load_model(settings.home, version)
answer = Predictor(settings, version).predict(Path(photo).read_bytes())
print(json.dumps({"version": answer.model_version, "key": answer.backbone_key,
                  "labels": sorted(n for n, _ in answer.probabilities), "best": answer.best_label,
                  "torch": "torch" in sys.modules}))
"""


def test_served_by_onnxruntime_without_torch(
    tuned: tuple[Settings, RetrainResult, RetrainResult], orl: Orl
) -> None:
    settings, _, challenger = tuned
    photo = orl["s2"][9]  # never imported
    run = subprocess.run(
        [sys.executable, "-c", SERVE, str(settings.home), challenger.version, str(photo)],
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    info = load_model(settings.home, challenger.version).info
    assert answer["version"] == challenger.version and answer["key"] == info.backbone_key
    assert answer["labels"] == PEOPLE and answer["best"] in PEOPLE
    assert answer["torch"] is False


def test_auto_weighs_finetuning_only_where_the_settings_allow(tmp_path: Path, orl: Orl) -> None:
    """auto fine-tunes when asked to (auto_finetune) with enough photos per class, and keeps
    whichever candidate wins on validation; by default, on a machine without a GPU, it does
    not fine-tune at all."""
    from lookalike.training.train import train

    settings = Settings(
        home=tmp_path / "home",
        backbone="face",
        finetune_epochs=1,
        finetune_batch_size=8,
        auto_finetune="always",
        auto_finetune_min_per_class=3,
    )
    import_images(class_folders(tmp_path / "source", {p: orl[p][:8] for p in PEOPLE}), settings)
    report = train(settings, head="auto")
    assert set(report.val_scores) == {"logistic", "gallery", "finetune"}
    best = max(report.val_scores.values(), key=lambda v: v or 0.0)
    assert report.val_scores[report.head] == best
    info = load_model(settings.home, report.version).info
    assert ("network.onnx" in info.files) == (report.head == "finetune")

    import torch

    defaults = settings.model_copy(update={"auto_finetune": "gpu"})
    if not torch.cuda.is_available():
        assert "finetune" not in train(defaults, head="auto").val_scores
    too_few = settings.model_copy(update={"auto_finetune_min_per_class": 100})
    assert "finetune" not in train(too_few, head="auto").val_scores
