"""Fine-tuning: the pretrained network itself is trained on the labelled images.

The other heads learn on frozen embeddings in milliseconds; this one trains the network
(SFace on aligned face crops, or EfficientNet-Lite0 on whole images: ``finetune_nets``) with
the recipe of the apps this project replaces, each part a setting (``finetune_*``):
augmentation (one of flip / brightness / contrast per image), dropout before the classifier,
Adam, cross-entropy with label smoothing, batches of 32, a learning-rate schedule, early
stopping on the validation loss with patience, the best epoch's weights kept.

What it leaves in ``out_dir``:

- ``best.pt``: the best epoch's checkpoint, rewritten atomically at each better epoch (so
  Ctrl-C, or a crash, keeps the best so far);
- ``model.onnx``: the best network exported to ONNX, input ``input`` (N, 3, S, S) RGB 0-255
  float, outputs ``embedding`` (L2-normalised) and ``logits``. Serving runs it in onnxruntime,
  no torch; the export is checked against the torch model before it is kept
  (``EMBEDDING_ATOL``, ``LOGITS_ATOL``).

torch is the ``torch`` extra; it is imported only when a fine-tuning starts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lookalike.config import Settings
from lookalike.errors import BackboneUnavailable, InvalidInput, ModelUnavailable

if TYPE_CHECKING:
    import torch

    from lookalike.training.finetune_nets import FinetuneNet

NETWORKS = ("face", "image")
CHECKPOINT = "best.pt"
ONNX_FILE = "model.onnx"
INSTALL_HINT = "pip install 'lookalike[torch]'"
# The exported network must answer like the torch model on the validation images: the
# embeddings are unit vectors, the logits of order 10. Measured on SFace: about 1e-6.
EMBEDDING_ATOL = 1e-4
LOGITS_ATOL = 1e-3
PARITY_IMAGES = 8  # validation images the export is checked on
IMPRINT_SCALE = 16.0  # logits = this x cosine to a class mean: confident, not saturated
MIN_DELTA = 1e-4  # a validation loss must beat the best by this much to count as better

Stopped = Literal["completed", "early_stopping", "interrupted"]


@dataclass(frozen=True)
class FinetuneConfig:
    """The recipe; ``from_settings`` reads it from the ``finetune_*`` settings."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    backbone_lr_factor: float = 0.1
    dropout: float = 0.2
    label_smoothing: float = 0.1
    scheduler: str = "plateau"
    patience: int = 3
    augment: bool = True
    jitter: float = 0.2
    init: str = "imprint"
    device: str = "auto"
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FinetuneConfig:
        base = cls(
            epochs=settings.finetune_epochs,
            batch_size=settings.finetune_batch_size,
            lr=settings.finetune_lr,
            backbone_lr_factor=settings.finetune_backbone_lr_factor,
            dropout=settings.finetune_dropout,
            label_smoothing=settings.finetune_label_smoothing,
            scheduler=settings.finetune_scheduler,
            patience=settings.finetune_patience,
            augment=settings.finetune_augment,
            jitter=settings.finetune_jitter,
            init=settings.finetune_init,
            device=settings.finetune_device,
            seed=settings.seed,
        )
        return replace(base, **overrides)


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    lr: float  # the classifier's learning rate during the epoch
    seconds: float
    best: bool  # this epoch's weights are the checkpoint


@dataclass(frozen=True)
class FinetuneProgress:
    """What a progress bar shows: sent after every batch (``stats`` None) and every epoch."""

    epoch: int
    epochs: int
    step: int  # batches done in this epoch
    steps: int
    train_loss: float  # running mean over this epoch's batches
    best_epoch: int
    stats: EpochStats | None = None

    def describe(self) -> str:
        text = f"epoch {self.epoch}/{self.epochs} loss {self.train_loss:.3f}"
        if self.stats is not None:
            text += f" val loss {self.stats.val_loss:.3f} acc {self.stats.val_accuracy:.1%}"
        return text


ProgressCallback = Callable[[FinetuneProgress], None]


@dataclass
class FinetuneResult:
    """What a model artifact needs from a fine-tuning, besides the files it points to."""

    network: str
    labels: list[str]
    input_size: int
    best_epoch: int
    best_val_loss: float
    best_val_accuracy: float
    stopped: Stopped
    device: str
    initial_val_loss: float  # before any training (the classifier as initialised)
    history: list[EpochStats]
    checkpoint: Path
    onnx_path: Path
    onnx_sha256: str
    export_difference: dict[str, float]  # max |torch - onnxruntime|, per output
    # The classifier as a logistic head over the embedding: logits = e @ coef.T + intercept.
    coef: np.ndarray
    intercept: np.ndarray
    config: FinetuneConfig
    seconds: float = 0.0
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """JSON-able figures for the model's ``head_params``."""
        return {
            "network": self.network,
            "input_size": self.input_size,
            "best_epoch": self.best_epoch,
            "best_val_loss": round(self.best_val_loss, 5),
            "best_val_accuracy": round(self.best_val_accuracy, 4),
            "stopped": self.stopped,
            "device": self.device,
            "epochs_run": len(self.history),
            "history": [asdict(s) for s in self.history],
            "onnx_sha256": self.onnx_sha256,
            "export_difference": self.export_difference,
            "config": asdict(self.config),
            "seconds": round(self.seconds, 2),
        }


def require_torch() -> None:
    """Raise a typed error saying how to install what fine-tuning needs."""
    missing = [m for m in ("torch", "kornia") if importlib.util.find_spec(m) is None]
    if missing:
        raise BackboneUnavailable(
            f"Fine-tuning needs {', '.join(missing)}, which is not installed. Install it"
            f" with: {INSTALL_HINT}",
            code="finetune.unavailable",
            details={"missing": missing, "extra": "torch"},
        )


def pick_device(requested: str) -> str:
    """``auto``: CUDA when torch sees a GPU, else CPU. ``cuda`` without a GPU is refused."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(
            "finetune_device is 'cuda' but torch sees no CUDA GPU. Use 'auto' or 'cpu', or"
            " install a CUDA build of torch.",
            code="finetune.no_cuda",
        )
    if requested not in ("cpu", "cuda"):
        raise InvalidInput(
            f"Unknown device {requested!r}: expected auto, cpu or cuda.",
            code="finetune.bad_device",
        )
    return requested


def network_inputs(images: Sequence[np.ndarray], network: str) -> np.ndarray:
    """(N, 3, S, S) uint8 network input. ``face``: aligned 112x112 RGB crops as they are;
    ``image``: any RGB image stretched to 224x224 like the ``image`` backbone does."""
    from lookalike.training.finetune_nets import TRUNKS

    size = TRUNKS[network][2]
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, image in enumerate(images):
        if network == "face":
            if image.shape != (size, size, 3) or image.dtype != np.uint8:
                raise InvalidInput(
                    f"Face fine-tuning expects aligned {size}x{size} RGB uint8 crops; image"
                    f" {i} is {image.dtype} {image.shape}.",
                    code="finetune.bad_input",
                )
            out[i] = image
        else:
            import cv2

            from lookalike.vision.efficientnet import to_rgb

            rgb = to_rgb(image)
            shrink = min(rgb.shape[:2]) >= size
            interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            out[i] = cv2.resize(rgb, (size, size), interpolation=interp)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def preprocessing(network: str) -> dict[str, Any]:
    """The exported network's input contract (recorded in the model)."""
    if network == "face":
        return {
            "input": "aligned 112x112 face crop (5 landmarks, ArcFace template), RGB 0-255"
            " float, NCHW",
            "outputs": ["embedding (L2-normalised 128-d)", "logits"],
        }
    return {
        "input": "whole image stretched to 224x224, RGB 0-255 float, NCHW (normalised inside"
        " the network: (x - 127) / 128)",
        "outputs": ["embedding (L2-normalised 1280-d)", "logits"],
    }


def finetune(
    train_images: Sequence[np.ndarray],
    train_labels: np.ndarray,
    val_images: Sequence[np.ndarray],
    val_labels: np.ndarray,
    labels: Sequence[str],
    out_dir: Path,
    *,
    network: str = "face",
    config: FinetuneConfig | None = None,
    progress: ProgressCallback | None = None,
) -> FinetuneResult:
    """Fine-tune ``network`` on the images, keep the best epoch, export it to ONNX.

    ``*_labels``: class indices into ``labels``. Validation images are required: they pick
    the best epoch and stop the training. KeyboardInterrupt (Ctrl-C, or raised by
    ``progress``) stops cleanly: the best checkpoint so far is exported and returned
    (``stopped == "interrupted"``); before any epoch finished it propagates.
    """
    config = config or FinetuneConfig()
    _validate(train_images, train_labels, val_images, val_labels, labels, network)
    require_torch()
    import torch

    from lookalike.training import finetune_nets as nets

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = pick_device(config.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / CHECKPOINT

    x_train = network_inputs(train_images, network)
    x_val = network_inputs(val_images, network)
    y_train = np.asarray(train_labels, np.int64)
    y_val = np.asarray(val_labels, np.int64)

    model = nets.build_network(network, len(labels), config.dropout).to(device)
    if config.init == "imprint":
        _imprint(model, x_train, y_train, len(labels), config.batch_size, device)
    groups = [{"params": list(model.classifier.parameters()), "lr": config.lr}]
    if config.backbone_lr_factor > 0:
        groups.append(
            {"params": list(model.trunk.parameters()), "lr": config.lr * config.backbone_lr_factor}
        )
    else:
        model.trunk.requires_grad_(False)
    optimizer = torch.optim.Adam(groups)
    scheduler = _scheduler(optimizer, config)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    augment = nets.Augment(config.jitter, config.jitter) if config.augment else None

    initial_val_loss, _ = _evaluate(model, x_val, y_val, loss_fn, config.batch_size, device)
    history: list[EpochStats] = []
    best_loss, best_epoch, stale = math.inf, 0, 0
    stopped: Stopped = "completed"
    steps = math.ceil(len(x_train) / config.batch_size)
    try:
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            lr = float(optimizer.param_groups[0]["lr"])
            model.train()
            order = rng.permutation(len(x_train))
            total, seen = 0.0, 0
            for step in range(steps):
                idx = order[step * config.batch_size : (step + 1) * config.batch_size]
                x = torch.from_numpy(x_train[idx]).to(device).float()
                y = torch.from_numpy(y_train[idx]).to(device)
                if augment is not None:
                    x = augment(x)
                _, logits = model(x)
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                if progress:
                    progress(
                        FinetuneProgress(
                            epoch, config.epochs, step + 1, steps, total / seen, best_epoch
                        )
                    )
            val_loss, val_acc = _evaluate(model, x_val, y_val, loss_fn, config.batch_size, device)
            if config.scheduler == "plateau":
                scheduler.step(val_loss)
            elif scheduler is not None:
                scheduler.step()
            better = val_loss < best_loss - MIN_DELTA
            if better:
                best_loss, best_epoch, stale = val_loss, epoch, 0
                state = {
                    "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "epoch": epoch,
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                    "labels": list(labels),
                    "network": network,
                    "config": asdict(config),
                }
                nets.save_checkpoint(state, checkpoint)
            else:
                stale += 1
            stats = EpochStats(
                epoch=epoch,
                train_loss=total / max(seen, 1),
                val_loss=val_loss,
                val_accuracy=val_acc,
                lr=lr,
                seconds=round(time.perf_counter() - epoch_start, 3),
                best=better,
            )
            history.append(stats)
            if progress:
                progress(
                    FinetuneProgress(
                        epoch, config.epochs, steps, steps, stats.train_loss, best_epoch, stats
                    )
                )
            if stale >= config.patience:
                stopped = "early_stopping"
                break
    except KeyboardInterrupt:
        if best_epoch == 0:
            raise  # nothing worth keeping yet
        stopped = "interrupted"

    saved = nets.load_checkpoint(checkpoint)
    model.load_state_dict(saved["state_dict"])
    model = model.cpu().eval()
    onnx_path = out_dir / ONNX_FILE
    nets.export_onnx(model, nets.TRUNKS[network][2], onnx_path)
    difference = export_difference(model, onnx_path, x_val[:PARITY_IMAGES])
    if difference["embedding"] > EMBEDDING_ATOL or difference["logits"] > LOGITS_ATOL:
        onnx_path.unlink()
        raise ModelUnavailable(
            "The fine-tuned network's ONNX export does not answer like the torch model"
            f" (max difference: embedding {difference['embedding']:.2e}, logits"
            f" {difference['logits']:.2e}); the checkpoint is kept in {checkpoint.name}.",
            code="finetune.export_mismatch",
            details=difference,
        )
    coef, intercept = model.head_arrays()
    return FinetuneResult(
        network=network,
        labels=list(labels),
        input_size=nets.TRUNKS[network][2],
        best_epoch=int(saved["epoch"]),
        best_val_loss=float(saved["val_loss"]),
        best_val_accuracy=float(saved["val_accuracy"]),
        stopped=stopped,
        device=device,
        initial_val_loss=initial_val_loss,
        history=history,
        checkpoint=checkpoint,
        onnx_path=onnx_path,
        onnx_sha256=hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        export_difference=difference,
        coef=coef,
        intercept=intercept,
        config=config,
        seconds=time.perf_counter() - started,
        preprocessing=preprocessing(network),
    )


def onnx_outputs(path: Path, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embedding, logits) of an exported network in onnxruntime (what serving runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    embedding, logits = session.run(
        ["embedding", "logits"], {"input": np.ascontiguousarray(inputs, np.float32)}
    )
    return np.asarray(embedding), np.asarray(logits)


def torch_outputs(model: FinetuneNet, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embedding, logits) of ``model`` in eval mode on CPU."""
    import torch

    model = model.cpu().eval()
    with torch.no_grad():
        embedding, logits = model(torch.from_numpy(np.asarray(inputs, np.float32)))
    return embedding.numpy(), logits.numpy()


def export_difference(model: FinetuneNet, path: Path, inputs: np.ndarray) -> dict[str, float]:
    """Max absolute difference between the torch model and its ONNX export, per output."""
    ours = torch_outputs(model, inputs)
    theirs = onnx_outputs(path, inputs)
    return {
        name: float(np.abs(a - b).max(initial=0.0))
        for name, a, b in zip(("embedding", "logits"), ours, theirs, strict=True)
    }


def _validate(
    train_images: Sequence[np.ndarray],
    train_labels: np.ndarray,
    val_images: Sequence[np.ndarray],
    val_labels: np.ndarray,
    labels: Sequence[str],
    network: str,
) -> None:
    if network not in NETWORKS:
        raise InvalidInput(
            f"Unknown network {network!r} to fine-tune: expected one of {', '.join(NETWORKS)}.",
            code="finetune.unknown_network",
        )
    if len(labels) < 2:
        raise InvalidInput("Fine-tuning needs at least 2 classes.", code="finetune.too_few_classes")
    for name, images, y in (
        ("training", train_images, train_labels),
        ("validation", val_images, val_labels),
    ):
        if len(images) == 0 or len(images) != len(y):
            raise InvalidInput(
                f"Fine-tuning needs {name} images with one label each; got {len(images)}"
                f" images and {len(y)} labels.",
                code="finetune.bad_input",
            )
        y = np.asarray(y)
        if y.min() < 0 or y.max() >= len(labels):
            raise InvalidInput(
                f"{name.capitalize()} labels must be class indices 0..{len(labels) - 1}.",
                code="finetune.bad_input",
            )


def _imprint(
    model: FinetuneNet, x: np.ndarray, y: np.ndarray, n_classes: int, batch_size: int, device: str
) -> None:
    """Start the classifier at each class's normalised mean embedding (weight imprinting,
    Qi et al. 2018): logits are then IMPRINT_SCALE times the cosine to each class mean, the
    nearest-class-mean classifier the light heads beat by little, instead of random ones
    the first epochs would spend undoing (and, through the trunk, damaging its features)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    sums = torch.zeros(n_classes, model.classifier.in_features, device=device)
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[start : start + batch_size]).to(device).float()
            yb = torch.from_numpy(y[start : start + batch_size]).to(device)
            embedding, _ = model(xb)
            sums.index_add_(0, yb, embedding)
        means = F.normalize(sums, dim=1)  # a class without images keeps a zero row
        model.classifier.weight.copy_(means * (IMPRINT_SCALE / model.scale))
        model.classifier.bias.zero_()


def _scheduler(optimizer: torch.optim.Optimizer, config: FinetuneConfig) -> Any:
    import torch

    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return None


def _evaluate(
    model: FinetuneNet,
    x: np.ndarray,
    y: np.ndarray,
    loss_fn: torch.nn.Module,
    batch_size: int,
    device: str,
) -> tuple[float, float]:
    """Mean loss and accuracy on (x, y), eval mode, no augmentation."""
    import torch

    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[start : start + batch_size]).to(device).float()
            yb = torch.from_numpy(y[start : start + batch_size]).to(device)
            _, logits = model(xb)
            total += float(loss_fn(logits, yb)) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
    return total / len(x), correct / len(x)
