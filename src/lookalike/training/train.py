"""Training: dataset -> splits -> cached embeddings -> head(s) -> open-set threshold ->
evaluation on the frozen test set -> a new model version (an artifact; registering it and
deciding whether it serves is ``lookalike.retrain``'s job)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookalike.artifacts import ModelInfo, TrainedModel, save_model
from lookalike.config import Settings
from lookalike.data.cache import embedding_cache
from lookalike.data.embed import Embedder, EmbedResult
from lookalike.data.splits import SplitStore
from lookalike.data.store import (
    CONTRIBUTION,
    DatasetStore,
    ImageRecord,
    is_contribution,
    is_personal,
    is_visitor,
    now_iso,
)
from lookalike.errors import DatasetError
from lookalike.training.evaluate import compute_metrics, labelled_arrays
from lookalike.training.heads import HEADS, Head, create_head
from lookalike.training.openset import choose_threshold, genuine_impostor
from lookalike.vision.backbones import create_backbone

Progress = Callable[[str, int, int], None]

# Used when there is nothing to choose a threshold on (e.g. one photo per class). SFace's
# published same-person cosine threshold is 0.363; for other backbones accept everything.
DEFAULT_THRESHOLDS = {"face": 0.363}


@dataclass
class TrainReport:
    version: str
    head: str
    backbone: str
    val_scores: dict[str, float | None]
    fit_seconds: dict[str, float]
    threshold: float
    metrics: dict[str, Any]
    too_few: dict[str, int]
    embedded: int  # embeddings computed (cache misses)
    cached: int
    failures: dict[str, str] = field(default_factory=dict)  # source -> why it was left out
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def train(
    settings: Settings,
    *,
    head: str = "auto",
    backbone_name: str | None = None,
    progress: Progress | None = None,
    reserved: Collection[str] = (),
    strict: bool = False,
) -> TrainReport:
    """Train a model on the current dataset and save it as a new version.

    Classes with fewer than ``min_images_per_class`` images are left out (``strict``: refuse
    to train instead, naming them). ``reserved``: version names already taken elsewhere
    (the registry's)."""
    if head != "auto":
        create_head(head)  # validates the name before any work
    store = DatasetStore(settings)
    catalog = store.load()
    if not catalog.images:
        raise DatasetError(
            "The dataset is empty. Import labelled images first: lookalike import DIR",
            code="dataset.empty",
        )
    if strict:
        small = {k: v for k, v in catalog.counts().items() if v < settings.min_images_per_class}
        if small:
            raise DatasetError(
                f"Not retraining: every class needs at least {settings.min_images_per_class}"
                f" images; these have fewer: {_few(small)}. Add photos or remove the classes.",
                code="dataset.class_too_small",
                details={"too_few": small},
            )
    splits, too_few = SplitStore(settings).update(catalog)
    by_subset: dict[str, list[ImageRecord]] = {"train": [], "val": [], "test": []}
    for sha, rec in sorted(catalog.images.items()):
        subset = splits.assignments.get(sha)
        if subset is not None and rec.label not in too_few:
            by_subset[subset].append(rec)
    labels = sorted({r.label for r in by_subset["train"]})
    # A class whose images all landed in val/test (tiny class, large test_fraction) cannot be
    # learned: leave it out like a class with too few images.
    counts, learnable = catalog.counts(), set(labels)
    for name in ("val", "test"):
        too_few.update(
            {r.label: counts[r.label] for r in by_subset[name] if r.label not in learnable}
        )
        by_subset[name] = [r for r in by_subset[name] if r.label in learnable]
    if len(labels) < 2:
        raise DatasetError(
            f"Training needs at least 2 classes with {settings.min_images_per_class} or more"
            f" images each; found {len(labels)}."
            + (f" Too few images: {_few(too_few)}." if too_few else ""),
            code="dataset.too_few_classes",
            details={"too_few": too_few},
        )
    index = {label: i for i, label in enumerate(labels)}

    backbone = create_backbone(backbone_name or settings.backbone, settings)
    embedder = Embedder(backbone, embedding_cache(settings.data_dir))
    items = {r.sha256: store.path_of(r) for recs in by_subset.values() for r in recs}
    result: EmbedResult = embedder.embed_files(
        items, (lambda d, t: progress("embed", d, t)) if progress else None
    )
    failures = {catalog.images[sha].source: why for sha, why in result.failures.items()}

    x_tr, y_tr, rec_tr = labelled_arrays(by_subset["train"], result.vectors, index, backbone.dim)
    x_va, y_va, _ = labelled_arrays(by_subset["val"], result.vectors, index, backbone.dim)
    test_hashes = splits.test_hashes()
    test_records = [r for r in by_subset["test"] if r.sha256 in test_hashes]
    x_te, y_te, rec_te = labelled_arrays(test_records, result.vectors, index, backbone.dim)

    names = list(HEADS) if head == "auto" else [head]
    fitted: dict[str, Head] = {}
    fit_seconds: dict[str, float] = {}
    val_scores: dict[str, float | None] = {}
    for name in names:
        candidate = create_head(name, **_head_kwargs(name, settings))
        start = time.perf_counter()
        candidate.fit(x_tr, y_tr, len(labels), x_va, y_va)
        fit_seconds[name] = round(time.perf_counter() - start, 4)
        fitted[name] = candidate
        val_scores[name] = (
            round(float((candidate.predict_proba(x_va).argmax(1) == y_va).mean()), 4)
            if len(y_va)
            else None
        )
    # Best validation accuracy; ties (and no validation data) keep the registry order,
    # logistic first: its probabilities are the better calibrated.
    chosen = max(names, key=lambda n: (val_scores[n] or 0.0, -names.index(n)))

    shown = np.array([not is_visitor(r.source) for r in rec_tr], dtype=bool)
    model = TrainedModel(
        info=ModelInfo(
            version="",
            created_at=now_iso(),
            backbone=backbone.id,
            backbone_key=backbone.key,
            preprocessing=backbone.preprocessing,
            head=chosen,
            head_params=fitted[chosen].params(),
            labels=labels,
            threshold=0.0,
            open_set={},
            top_k=settings.top_k_per_class,
            dataset_revision=catalog.revision,
            test_version=splits.test_version,
            counts={
                name: dict(sorted(_count(recs).items()))
                for name, recs in (("train", rec_tr), ("val", by_subset["val"]), ("test", rec_te))
            },
            personal_sources=sorted({r.source for r in rec_tr if is_personal(r.source)}),
            contributors={
                r.label: r.source.removeprefix(CONTRIBUTION)
                for r in rec_tr
                if is_contribution(r.source)
            },
            resemblance={"tie_z": settings.tie_z},  # fitted on the gallery when saved
        ),
        head=fitted[chosen],
        # Reference photos: the operator's and contributors' (who consented to being found).
        # Visitors' photos train the head but are never shown to another visitor.
        gallery=x_tr[shown],
        gallery_labels=y_tr[shown],
        gallery_hashes=np.array([r.sha256 for r in rec_tr])[shown],
        gallery_exts=np.array([r.ext for r in rec_tr])[shown],
    )
    genuine, impostor = genuine_impostor(model.aggregator, x_tr[shown], y_tr[shown], x_va, y_va)
    threshold, how = choose_threshold(genuine, impostor, DEFAULT_THRESHOLDS.get(backbone.id, -1.0))
    model.info.threshold = round(threshold, 4)
    model.info.open_set = how

    proba, _, match = model.classify(x_te) if len(x_te) else (np.zeros((0, 0)),) * 3
    metrics = compute_metrics(
        proba, match, y_te, labels, threshold,
        [r.sha256 for r in rec_te], [r.source for r in rec_te],
    )  # fmt: skip
    metrics["val_scores"] = val_scores
    metrics["fit_seconds"] = fit_seconds
    model.info.metrics = metrics
    version = save_model(settings.home, model, reserved)
    return TrainReport(
        version=version,
        head=chosen,
        backbone=backbone.key,
        val_scores=val_scores,
        fit_seconds=fit_seconds,
        threshold=model.info.threshold,
        metrics=metrics,
        too_few=too_few,
        embedded=result.computed,
        cached=len(items) - result.computed,
        failures=failures,
        counts=model.info.counts,
    )


def _few(too_few: dict[str, int]) -> str:
    shown = [f"{k} ({v})" for k, v in sorted(too_few.items())[:8]]
    return ", ".join(shown) + (" ..." if len(too_few) > 8 else "")


def _count(records: list[ImageRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r.label] = out.get(r.label, 0) + 1
    return out


def _head_kwargs(name: str, settings: Settings) -> dict[str, Any]:
    return {"k": settings.top_k_per_class} if name == "gallery" else {}
