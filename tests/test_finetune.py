"""Fine-tuning on a tiny real subset: SFace converted to torch, the loss falls, early stopping,
Ctrl-C keeps the best checkpoint, the ONNX export answers like the torch model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.errors import InvalidInput
from lookalike.scoring.heads import LogisticHead
from lookalike.vision.faces import SFACE_FILE, FaceBackbone, model_dir
from lookalike.vision.images import read_image

pytest.importorskip("torch")
pytest.importorskip("kornia")

from lookalike.training import finetune_nets as nets
from lookalike.training.finetune import (
    EMBEDDING_ATOL,
    LOGITS_ATOL,
    FinetuneConfig,
    FinetuneProgress,
    FinetuneResult,
    finetune,
    onnx_outputs,
    pick_device,
    torch_outputs,
)

People = dict[str, list[Path]]
PEOPLE = ["s1", "s2", "s3"]
Crops = tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: the test machines' cores are shared, and two threads fighting
    other processes for them made each step three times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory, orl: People) -> Crops:
    """Aligned crops of 3 ORL people: photos 1-4 train, 5-6 validate."""
    backbone = FaceBackbone(Settings(home=tmp_path_factory.mktemp("finetune-home")))
    x_train, y_train, x_val, y_val = [], [], [], []
    for label, person in enumerate(PEOPLE):
        for i, path in enumerate(orl[person][:6]):
            rgb = read_image(path).rgb
            crop = backbone.align(rgb, backbone.detect(rgb)[0])
            (x_train if i < 4 else x_val).append(crop)
            (y_train if i < 4 else y_val).append(label)
    return x_train, np.array(y_train), x_val, np.array(y_val)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, crops: Crops) -> FinetuneResult:
    """2 epochs of the full recipe (whole network trained, augmentation on), batches of 8."""
    x_train, y_train, x_val, y_val = crops
    config = FinetuneConfig(epochs=2, batch_size=8)
    out = tmp_path_factory.mktemp("finetuned")
    return finetune(x_train, y_train, x_val, y_val, PEOPLE, out, config=config)


def quick(**overrides: object) -> FinetuneConfig:
    """A fast setup for the control-flow tests: the pretrained network frozen (only the
    classifier learns), no augmentation, a high learning rate, a random classifier (the
    control-flow tests steer its loss; an imprinted one starts near the answer)."""
    base = {
        "batch_size": 8,
        "backbone_lr_factor": 0.0,
        "augment": False,
        "lr": 1e-2,
        "init": "random",
    }
    return FinetuneConfig(**(base | overrides))  # type: ignore[arg-type]


# --- SFace in torch ----------------------------------------------------------------------------


def test_sface_converted_to_torch_matches_opencv(crops: Crops) -> None:
    """The ONNX graph converted to a torch module == OpenCV's FaceRecognizerSF (measured:
    max |difference| about 5e-7 on unit vectors)."""
    import torch

    recognizer = cv2.FaceRecognizerSF.create(str(model_dir() / SFACE_FILE), "")
    trunk = nets.sface_trunk().eval()
    x_val = crops[2]
    batch = torch.from_numpy(np.stack(x_val).astype(np.float32).transpose(0, 3, 1, 2))
    with torch.no_grad():
        ours = torch.nn.functional.normalize(trunk(batch), dim=1).numpy()
    for crop, vector in zip(x_val, ours, strict=True):
        theirs = recognizer.feature(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)).reshape(-1)
        theirs = theirs / np.linalg.norm(theirs)
        assert np.abs(vector - theirs).max() < 1e-5
    # Its weights are trainable parameters, not frozen constants.
    assert sum(p.numel() for p in trunk.parameters() if p.requires_grad) > 1_000_000


# --- the trainer ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_loss_falls_over_two_epochs(trained: FinetuneResult) -> None:
    first, second = trained.history
    assert second.train_loss < first.train_loss
    assert trained.best_val_loss < trained.initial_val_loss
    assert trained.stopped == "completed" and trained.best_epoch in (1, 2)
    assert trained.best_val_accuracy >= 0.5  # 3 classes: chance is 1/3


@pytest.mark.slow
def test_onnx_export_answers_like_the_torch_model(trained: FinetuneResult, crops: Crops) -> None:
    """Tolerance: 1e-4 on the unit-length embedding, 1e-3 on the logits (measured about
    1e-6 for both)."""
    model = nets.build_network("face", len(PEOPLE), 0.2)
    model.load_state_dict(nets.load_checkpoint(trained.checkpoint)["state_dict"])
    x = np.concatenate([np.stack(crops[2]), np.stack(crops[0])[:, :, ::-1]])  # + mirrored
    x = x.transpose(0, 3, 1, 2).astype(np.float32)
    embedding, logits = torch_outputs(model, x)
    onnx_embedding, onnx_logits = onnx_outputs(trained.onnx_path, x)
    assert np.abs(embedding - onnx_embedding).max() <= EMBEDDING_ATOL
    assert np.abs(logits - onnx_logits).max() <= LOGITS_ATOL
    assert trained.export_difference["embedding"] <= EMBEDDING_ATOL
    assert trained.export_difference["logits"] <= LOGITS_ATOL
    # Serving's view: a logistic head over the exported embedding gives the same answer.
    head = LogisticHead()
    head.coef, head.intercept = trained.coef, trained.intercept
    expected = np.exp(onnx_logits - onnx_logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    assert np.abs(head.predict_proba(onnx_embedding) - expected).max() < 1e-5


@pytest.mark.slow
def test_trains_on_cpu_by_default(trained: FinetuneResult) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: auto picks it")
    assert trained.device == "cpu" and trained.config.device == "auto"


def test_auto_device_picks_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == "cuda"
    assert pick_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    with pytest.raises(InvalidInput) as err:
        pick_device("cuda")
    assert err.value.code == "finetune.no_cuda"


@pytest.mark.slow
def test_early_stopping_when_validation_loss_stops_improving(tmp_path: Path, crops: Crops) -> None:
    """Validation photos labelled as the wrong person: the better the network learns the
    training photos, the worse the validation loss gets, so patience 1 stops at epoch 2."""
    x_train, y_train, x_val, y_val = crops
    wrong = (y_val + 1) % len(PEOPLE)
    config = quick(epochs=6, patience=1)
    result = finetune(x_train, y_train, x_val, wrong, PEOPLE, tmp_path, config=config)
    assert result.stopped == "early_stopping"
    assert len(result.history) == 2
    assert result.history[1].val_loss >= result.history[0].val_loss
    assert result.best_epoch == 1
    assert nets.load_checkpoint(result.checkpoint)["epoch"] == 1


@pytest.mark.slow
def test_ctrl_c_keeps_the_best_checkpoint(tmp_path: Path, crops: Crops) -> None:
    """KeyboardInterrupt from the progress bar after epoch 2 of 5: the training stops, the
    best checkpoint so far is exported, and nothing half-written is left behind."""
    x_train, y_train, x_val, y_val = crops
    seen: list[FinetuneProgress] = []

    def progress(event: FinetuneProgress) -> None:
        seen.append(event)
        if event.stats is not None and event.epoch == 2:
            raise KeyboardInterrupt

    config = quick(epochs=5, patience=5)
    result = finetune(
        x_train, y_train, x_val, y_val, PEOPLE, tmp_path, config=config, progress=progress
    )
    assert result.stopped == "interrupted"
    assert [s.epoch for s in result.history] == [1, 2]
    best = min(result.history, key=lambda s: s.val_loss)
    saved = nets.load_checkpoint(result.checkpoint)
    assert saved["epoch"] == result.best_epoch == best.epoch
    assert saved["val_loss"] == pytest.approx(best.val_loss)
    # The exported network is the checkpoint's.
    model = nets.build_network("face", len(PEOPLE), 0.2)
    model.load_state_dict(saved["state_dict"])
    x = np.stack(x_val).transpose(0, 3, 1, 2).astype(np.float32)
    assert np.abs(torch_outputs(model, x)[1] - onnx_outputs(result.onnx_path, x)[1]).max() < 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "model.onnx"]
    # The progress bar saw batches and epochs, with the figures it shows.
    assert any(e.stats is None for e in seen)
    assert "val loss" in seen[-1].describe() and "acc" in seen[-1].describe()


@pytest.mark.slow
def test_ctrl_c_before_any_epoch_finished_propagates(tmp_path: Path, crops: Crops) -> None:
    x_train, y_train, x_val, y_val = crops

    def progress(event: FinetuneProgress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(
            x_train, y_train, x_val, y_val, PEOPLE, tmp_path, config=quick(), progress=progress
        )
    assert not (tmp_path / "best.pt").exists()


# --- settings and bad input ---------------------------------------------------------------------


def test_imprinting_starts_the_classifier_at_the_class_means(crops: Crops) -> None:
    """Before any step, an imprinted classifier already names the validation photos (3
    people, chance 1/3) and has a lower loss than a random one."""
    import torch

    from lookalike.training.finetune import _evaluate, _imprint, network_inputs

    x_train, y_train, x_val, y_val = crops
    x_tr, x_va = network_inputs(x_train, "face"), network_inputs(x_val, "face")
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    torch.manual_seed(0)
    model = nets.build_network("face", len(PEOPLE), 0.2)
    random_loss, _ = _evaluate(model, x_va, y_val, loss_fn, 8, "cpu")
    _imprint(model, x_tr, y_train, len(PEOPLE), 8, "cpu")
    imprinted_loss, accuracy = _evaluate(model, x_va, y_val, loss_fn, 8, "cpu")
    assert accuracy == 1.0
    assert imprinted_loss < random_loss
    assert float(model.classifier.bias.detach().abs().max()) == 0.0


def test_config_reads_the_settings() -> None:
    settings = Settings(finetune_patience=5, finetune_scheduler="cosine", finetune_lr=3e-4)
    config = FinetuneConfig.from_settings(settings, epochs=2)
    assert (config.patience, config.scheduler, config.lr, config.epochs) == (5, "cosine", 3e-4, 2)
    assert config.batch_size == 32 and config.label_smoothing == 0.1  # the recipe's defaults
    assert config.init == "imprint"
    assert FinetuneConfig.from_settings(Settings(finetune_init="random")).init == "random"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"network": "resnet"}, "finetune.unknown_network"),
        ({"labels": ["only"]}, "finetune.too_few_classes"),
        ({"val_images": []}, "finetune.bad_input"),
        ({"train_labels": np.array([0, 7])}, "finetune.bad_input"),
        ({"train_images": [np.zeros((64, 64, 3), np.uint8)] * 2}, "finetune.bad_input"),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, change: dict[str, object], code: str) -> None:
    crop = np.zeros((112, 112, 3), np.uint8)
    args: dict[str, object] = {
        "train_images": [crop, crop],
        "train_labels": np.array([0, 1]),
        "val_images": [crop],
        "val_labels": np.array([1]),
        "labels": ["a", "b"],
        "out_dir": tmp_path,
    }
    with pytest.raises(InvalidInput) as err:
        finetune(**(args | change))  # type: ignore[arg-type]
    assert err.value.code == code
    assert not (tmp_path / "best.pt").exists()


@pytest.mark.slow
def test_image_network_exports_like_torch(tmp_path: Path, nonfaces: dict[str, np.ndarray]) -> None:
    """The ``image`` network (EfficientNet-Lite0, whole images of any size) goes through the
    same trainer and export; the classifier alone learns here, to keep it short."""
    photos = [nonfaces[name] for name in ("coffee", "chelsea", "rocket", "astronaut")]
    labels = np.array([0, 1, 0, 1])
    config = quick(epochs=1)
    result = finetune(
        photos, labels, photos[:2], labels[:2], ["a", "b"], tmp_path, network="image",
        config=config,
    )  # fmt: skip
    assert result.input_size == 224 and result.coef.shape == (2, 1280)
    assert result.export_difference["embedding"] <= EMBEDDING_ATOL
    assert result.export_difference["logits"] <= LOGITS_ATOL
    x = np.stack([cv2.resize(p, (224, 224)) for p in photos]).transpose(0, 3, 1, 2)
    embedding, _ = onnx_outputs(result.onnx_path, x.astype(np.float32))
    assert embedding.shape == (4, 1280)
    assert np.allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
