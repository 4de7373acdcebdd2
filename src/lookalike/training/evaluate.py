"""Evaluation on the frozen test set: accuracy, macro-F1, per-class precision/recall,
confusion matrix, top losses; written as JSON and a PNG. ``evaluate_version`` re-evaluates
a saved model (``lookalike evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.artifacts import TrainedModel, backbone_for, load_model
from lookalike.config import Settings
from lookalike.data.cache import embedding_cache
from lookalike.data.embed import Embedder
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore, ImageRecord
from lookalike.fsutil import atomic_write_bytes, atomic_write_json


def compute_metrics(
    proba: np.ndarray,
    match: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    threshold: float,
    hashes: list[str],
    sources: list[str] | None = None,
    top_losses: int = 10,
) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    n_classes = len(labels)
    if len(y) == 0:
        return {"n": 0, "accuracy": None, "macro_f1": None}
    pred = proba.argmax(axis=1)
    idx = np.arange(n_classes)
    present = np.unique(y)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=idx, zero_division=0
    )
    best_match = match[np.arange(len(y)), pred]
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-proba[wrong, pred[wrong]])][:top_losses]
    return {
        "n": len(y),
        "accuracy": round(float((pred == y).mean()), 4),
        # Macro-F1 over classes that have test photos (others have nothing to measure).
        "macro_f1": round(
            float(f1_score(y, pred, labels=present, average="macro", zero_division=0)), 4
        ),
        "no_strong_match_rate": round(float((best_match < threshold).mean()), 4),
        "per_class": {
            labels[c]: {
                "precision": round(float(precision[c]), 4),
                "recall": round(float(recall[c]), 4),
                "f1": round(float(f1[c]), 4),
                "support": int(support[c]),
            }
            for c in idx
        },
        "confusion": confusion_matrix(y, pred, labels=idx).tolist(),
        "top_losses": [
            {
                "sha256": hashes[i],
                "source": sources[i] if sources else None,
                "true": labels[y[i]],
                "predicted": labels[pred[i]],
                "probability": round(float(proba[i, pred[i]]), 4),
                "true_probability": round(float(proba[i, y[i]]), 4),
            }
            for i in wrong
        ],
        # What answers to held-out photos look like: the reference that drift is measured
        # against (deciles of the best class's probability and match score).
        "reference": {
            "quantiles": [round(q, 2) for q in REFERENCE_QUANTILES],
            "probability": [
                round(float(v), 4)
                for v in np.quantile(proba[np.arange(len(y)), pred], REFERENCE_QUANTILES)
            ],
            "match_score": [
                round(float(v), 4) for v in np.quantile(best_match, REFERENCE_QUANTILES)
            ],
            "mean_match_score": round(float(best_match.mean()), 4),
        },
    }


REFERENCE_QUANTILES = [i / 10 for i in range(11)]


def write_report(metrics: dict[str, Any], labels: list[str], out_dir: Path) -> list[Path]:
    """metrics.json + confusion.png in ``out_dir``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "metrics.json"
    atomic_write_json(json_path, metrics)
    paths = [json_path]
    confusion = np.array(metrics.get("confusion") or [[0]])
    n = len(labels)
    size = min(4 + 0.25 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=90, fontsize=max(4, 10 - n // 10))
    ax.set_yticks(range(n), labels, fontsize=max(4, 10 - n // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = metrics.get("accuracy")
    ax.set_title(f"Confusion matrix (accuracy {acc}, n={metrics.get('n')})")
    if n <= 30:
        for (i, j), v in np.ndenumerate(confusion):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    png_path = out_dir / "confusion.png"
    atomic_write_bytes(png_path, buf.getvalue())
    paths.append(png_path)
    return paths


def labelled_arrays(
    records: list[ImageRecord], vectors: dict[str, np.ndarray], index: dict[str, int], dim: int
) -> tuple[np.ndarray, np.ndarray, list[ImageRecord]]:
    """Embeddings (x) and class indices (y) of the records that have an embedding."""
    kept = [r for r in records if r.sha256 in vectors]
    x = np.stack([vectors[r.sha256] for r in kept]) if kept else np.zeros((0, dim), np.float32)
    y = np.array([index[r.label] for r in kept], dtype=np.int64)
    return x.astype(np.float32), y, kept


@dataclass
class HeldOutAnswers:
    """A model's answers to the photos of a frozen test set version: the photos it could
    answer (``kept``, in hash order), their class indices ``y``, its probabilities and match
    scores; ``unanswered``: test photos of known classes its backbone found no face in."""

    kept: list[ImageRecord]
    y: np.ndarray
    proba: np.ndarray
    match: np.ndarray
    unanswered: int


def held_out_records(settings: Settings, labels: list[str], test_version: int) -> list[ImageRecord]:
    """The photos of ``test_version``'s test set whose class the model knows, in hash order
    (photos deleted from the dataset since are gone)."""
    catalog = DatasetStore(settings).load()
    hashes = SplitStore(settings).load().test_hashes(test_version)
    known = set(labels)
    images = catalog.images
    return [images[h] for h in sorted(hashes) if h in images and images[h].label in known]


def held_out_answers(
    settings: Settings, model: TrainedModel, records: list[ImageRecord]
) -> HeldOutAnswers:
    """``model``'s answers to ``records`` (embeddings through the cache)."""
    info = model.info
    store = DatasetStore(settings)
    index = {label: i for i, label in enumerate(info.labels)}
    embedder = Embedder(backbone_for(info, settings), embedding_cache(settings.data_dir))
    result = embedder.embed_files({r.sha256: store.path_of(r) for r in records})
    x, y, kept = labelled_arrays(records, result.vectors, index, model.gallery.shape[1])
    empty = np.zeros((0, len(info.labels)))
    proba, match = model.score(x) if len(x) else (empty, empty)
    return HeldOutAnswers(kept, y, proba, match, len(records) - len(kept))


def evaluate_version(
    settings: Settings, version: str | None, out_dir: Path | None = None
) -> tuple[dict[str, Any], list[Path]]:
    """Re-evaluate a saved model on the frozen test set version it records."""
    model = load_model(settings, version)
    info = model.info
    answers = held_out_answers(
        settings, model, held_out_records(settings, info.labels, info.test_version)
    )
    kept = answers.kept
    metrics = compute_metrics(
        answers.proba, answers.match, answers.y, info.labels, info.threshold,
        [r.sha256 for r in kept], [r.source for r in kept],
    )  # fmt: skip
    metrics["model"] = info.version
    metrics["test_version"] = info.test_version
    paths = write_report(metrics, info.labels, out_dir or settings.data_dir.reports / info.version)
    return metrics, paths
