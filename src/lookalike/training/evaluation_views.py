"""Evaluation views of a model version, for the admin page ``/admin/evaluation`` and
``lookalike evaluate --compare``: per-class precision / recall / F1, the confusion matrix
with the test photos behind each cell, the top losses, and two versions side by side on the
same frozen test photos (accuracy, macro-F1, per-class recall, the photos one gets right and
the other wrong).

A view is JSON-ready (photos by SHA-256, never by path) and cached per (version, test set
version) in ``reports/mNNNN/``: a saved model never changes, and the cache key holds the test
photos and their labels, so a relabelled or deleted photo makes a fresh view."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

from lookalike.artifacts import TrainedModel, load_model
from lookalike.config import Settings
from lookalike.data.store import ImageRecord
from lookalike.fsutil import atomic_write_json
from lookalike.training.evaluate import compute_metrics, held_out_answers, held_out_records

VIEW_FORMAT = 1
CELL_PHOTOS = 60  # photos listed per confusion cell (its count is always whole)
TOP_LOSSES = 24
DIFF_PHOTOS = 60  # photos listed per side of a comparison


def evaluation_view(
    settings: Settings, version: str | None, test_version: int | None = None
) -> dict[str, Any]:
    """The views of ``version`` on test set ``test_version`` (default: its own frozen one)."""
    return _view(settings, load_model(settings, version), test_version)


def side_by_side(
    settings: Settings, version: str, other: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Both versions' views on the same photos, the newer of their test set versions (it
    holds the older one, as the promotion gate compares them), and what differs."""
    model, other_model = load_model(settings, version), load_model(settings, other)
    newest = max(model.info.test_version, other_model.info.test_version)
    a, b = _view(settings, model, newest), _view(settings, other_model, newest)
    return a, b, compare_views(a, b)


def _view(settings: Settings, model: TrainedModel, test_version: int | None) -> dict[str, Any]:
    info = model.info
    tv = info.test_version if test_version is None else test_version
    records = held_out_records(settings, info.labels, tv)
    key = _key(info.version, tv, records)
    path = settings.data_dir.evaluation_view(info.version, tv)
    try:
        cached = json.loads(path.read_text())
        if isinstance(cached, dict) and cached.get("key") == key:
            return cached
    except (OSError, ValueError):
        pass  # none yet, or unreadable: computed again
    view = build_view(settings, model, records, tv)
    view["key"] = key
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, view)
    except OSError:
        pass  # a read-only data dir still answers, uncached
    return view


def _key(version: str, test_version: int, records: list[ImageRecord]) -> str:
    digest = hashlib.sha256(f"{VIEW_FORMAT} {version} {test_version}\n".encode())
    for r in records:
        digest.update(f"{r.sha256} {r.label}\n".encode())
    return digest.hexdigest()


def build_view(
    settings: Settings, model: TrainedModel, records: list[ImageRecord], test_version: int
) -> dict[str, Any]:
    """The views, computed (no cache)."""
    info = model.info
    labels = list(info.labels)
    answers = held_out_answers(settings, model, records)
    kept, y, proba = answers.kept, answers.y, answers.proba
    metrics = compute_metrics(
        proba, answers.match, y, labels, info.threshold,
        [r.sha256 for r in kept], [r.source for r in kept], top_losses=TOP_LOSSES,
    )  # fmt: skip
    pred = proba.argmax(axis=1) if len(y) else np.zeros(0, np.int64)
    photos = [
        {
            "sha256": r.sha256,
            "source": r.source,
            "true": labels[int(t)],
            "predicted": labels[int(p)],
            "probability": round(float(proba[i, p]), 4),
            "true_probability": round(float(proba[i, t]), 4),
            # Cross-entropy of the true class: how wrong a loss is.
            "loss": round(-math.log(max(float(proba[i, t]), 1e-12)), 4),
        }
        for i, (r, t, p) in enumerate(zip(kept, y.tolist(), pred.tolist(), strict=True))
    ]
    cells: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for t, p, photo in zip(y.tolist(), pred.tolist(), photos, strict=True):
        cells.setdefault((t, p), []).append(photo)
    by_hash = {photo["sha256"]: photo for photo in photos}
    confusion = metrics.get("confusion") or [[0] * len(labels) for _ in labels]
    per_class = metrics.get("per_class") or {}
    return {
        "format": VIEW_FORMAT,
        "version": info.version,
        "model_test_version": info.test_version,
        "test_version": test_version,
        "n": len(kept),
        "unanswered": answers.unanswered,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "labels": labels,
        "per_class": [{"label": label, **per_class[label]} for label in per_class],
        "confusion": confusion,
        "cells": [
            {
                "true": labels[t],
                "predicted": labels[p],
                "count": len(found),
                # The most confident answers first: the clearest mistakes lead.
                "photos": sorted(found, key=lambda f: -f["probability"])[:CELL_PHOTOS],
            }
            for (t, p), found in sorted(cells.items())
        ],
        "top_losses": [by_hash[loss["sha256"]] for loss in metrics.get("top_losses", [])],
        "photos": photos,  # every answer: what a comparison pairs
    }


def compare_views(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` beside ``b`` (views on the same test set version): per-class recall of each and
    the photos both answered that one gets right and the other wrong."""
    b_photos = {p["sha256"]: p for p in b["photos"]}
    only_a: list[dict[str, Any]] = []
    only_b: list[dict[str, Any]] = []
    shared = 0
    for photo in a["photos"]:
        other = b_photos.get(photo["sha256"])
        if other is None:
            continue  # a class ``b`` does not know, or no face for its backbone
        shared += 1
        a_right, b_right = photo["predicted"] == photo["true"], other["predicted"] == other["true"]
        if a_right != b_right:
            pair = {
                "sha256": photo["sha256"],
                "source": photo["source"],
                "true": photo["true"],
                "predicted": photo["predicted"],
                "compare_predicted": other["predicted"],
            }
            (only_a if a_right else only_b).append(pair)
    recall_a = {c["label"]: c for c in a["per_class"]}
    recall_b = {c["label"]: c for c in b["per_class"]}
    labels = list(a["labels"]) + [label for label in b["labels"] if label not in recall_a]
    return {
        "test_version": a["test_version"],
        "shared": shared,
        "per_class": [
            {
                "label": label,
                "recall": _recall(recall_a.get(label)),
                "compare_recall": _recall(recall_b.get(label)),
                "support": max(
                    (c or {}).get("support", 0) for c in (recall_a.get(label), recall_b.get(label))
                ),
            }
            for label in labels
        ],
        "only_version_right": only_a[:DIFF_PHOTOS],
        "only_compare_right": only_b[:DIFF_PHOTOS],
        "only_version_right_count": len(only_a),
        "only_compare_right_count": len(only_b),
    }


def _recall(row: dict[str, Any] | None) -> float | None:
    """A class's recall; None when the model does not know it or it has no test photos."""
    if row is None or not row.get("support"):
        return None
    return float(row["recall"])
