"""Training: dataset -> splits -> cached embeddings -> head(s) -> open-set threshold ->
evaluation on the frozen test set -> a new model version (an artifact; registering it and
deciding whether it serves is ``lookalike.retrain``'s job)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
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
from lookalike.errors import DatasetError, InvalidInput, LookalikeError
from lookalike.training.evaluate import compute_metrics, labelled_arrays
from lookalike.training.finetune import (
    NETWORKS,
    FinetuneConfig,
    FinetuneProgress,
    FinetuneResult,
    finetune,
    require_torch,
)
from lookalike.training.heads import HEADS, FinetuneHead, Head, create_head
from lookalike.training.openset import choose_threshold, genuine_impostor
from lookalike.vision.backbones import Backbone, create_backbone
from lookalike.vision.efficientnet import stretch
from lookalike.vision.finetuned import NETWORK_FILE, finetuned_backbone
from lookalike.vision.images import read_image

Progress = Callable[[str, int, int], None]
Labelled = tuple[np.ndarray, np.ndarray, list[ImageRecord]]  # x, y, records kept

# Used when there is nothing to choose a threshold on (e.g. one photo per class). SFace's
# published same-person cosine threshold is 0.363; a fine-tuned face network has none, and
# as almost every visitor is nobody in the gallery it says "this is X" to no one (above any
# cosine) until validation photos calibrate it; other backbones (generic classes) accept
# everything.
DEFAULT_THRESHOLDS = {"face": 0.363, "face-ft": 1.01}
# The head that trains the network itself (``training.finetune``): asked for by name, or
# weighed by ``auto`` where the settings allow it (``_auto_finetunes``).
FINETUNE = "finetune"


@dataclass
class _Space:
    """One embedding space the candidate heads learn in."""

    backbone: Backbone
    result: EmbedResult
    heads: list[str]
    tuned: FinetuneResult | None = None  # set: the fine-tuned network's space
    # Its training and validation arrays, built once for its heads and kept for the model.
    train: Labelled = field(init=False)
    val: Labelled = field(init=False)


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
    (the registry's). ``head="finetune"``: the backbone's network is fine-tuned on the
    training photos and the model embeds with it (saved as the model's ``network.onnx``)."""
    if head == FINETUNE:
        require_torch()  # before any work: say how to install it
    elif head != "auto":
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
    base_id = backbone.id
    if head == FINETUNE and base_id not in NETWORKS:
        raise InvalidInput(
            f"The {base_id!r} backbone cannot be fine-tuned; use one of: {', '.join(NETWORKS)}.",
            code="train.cannot_finetune",
        )
    cache = embedding_cache(settings.data_dir)
    items = {r.sha256: store.path_of(r) for recs in by_subset.values() for r in recs}
    on_embed = (lambda d, t: progress("embed", d, t)) if progress else None
    result: EmbedResult = Embedder(backbone, cache).embed_files(items, on_embed)
    embedded = result.computed
    # Each candidate head learns in one embedding space: the pretrained network's, or, for
    # the finetune head, the fine-tuned network's (which the fine-tuning itself produces).
    spaces = [] if head == FINETUNE else [_Space(backbone, result, _light_heads(head))]
    network = b""
    if head == FINETUNE or (head == "auto" and _auto_finetunes(settings, backbone, by_subset)):
        with tempfile.TemporaryDirectory(prefix="lookalike-finetune-") as tmp:
            tuned = _finetune(
                settings, backbone, store, by_subset, result.vectors, index, Path(tmp), progress
            )
            network = tuned.onnx_path.read_bytes()
            # Its embeddings are the fine-tuned network's (own cache key).
            tuned_backbone = finetuned_backbone(backbone, tuned.onnx_path, tuned.onnx_sha256)
            tuned_result = Embedder(tuned_backbone, cache).embed_files(items, on_embed)
        tuned_result.failures = result.failures | tuned_result.failures
        embedded += tuned_result.computed
        spaces.append(_Space(tuned_backbone, tuned_result, [FINETUNE], tuned))

    fitted: dict[str, Head] = {}
    fit_seconds: dict[str, float] = {}
    val_scores: dict[str, float | None] = {}
    space_of: dict[str, _Space] = {}
    for space in spaces:
        vectors, dim = space.result.vectors, space.backbone.dim
        space.train = labelled_arrays(by_subset["train"], vectors, index, dim)
        space.val = labelled_arrays(by_subset["val"], vectors, index, dim)
        (x_tr, y_tr, _), (x_va, y_va, _) = space.train, space.val
        for name in space.heads:
            candidate: Head
            if space.tuned is not None:
                candidate = FinetuneHead(
                    space.tuned.coef, space.tuned.intercept, space.tuned.params()
                )
            else:
                candidate = create_head(name, **_head_kwargs(name, settings))
            start = time.perf_counter()
            candidate.fit(x_tr, y_tr, len(labels), x_va, y_va)
            spent = time.perf_counter() - start + (space.tuned.seconds if space.tuned else 0.0)
            fit_seconds[name] = round(spent, 4)
            fitted[name] = candidate
            space_of[name] = space
            val_scores[name] = (
                round(float((candidate.predict_proba(x_va).argmax(1) == y_va).mean()), 4)
                if len(y_va)
                else None
            )
    # Best validation accuracy; ties (and no validation data) keep the registry order,
    # logistic first: its probabilities are the better calibrated.
    names = list(fitted)
    chosen = max(names, key=lambda n: (val_scores[n] or 0.0, -names.index(n)))
    best = space_of[chosen]
    backbone, result, tuned_chosen = best.backbone, best.result, best.tuned
    files = {NETWORK_FILE: network} if tuned_chosen is not None else {}
    failures = {catalog.images[sha].source: why for sha, why in result.failures.items()}

    (x_tr, y_tr, rec_tr), (x_va, y_va, _) = best.train, best.val
    test_hashes = splits.test_hashes()
    test_records = [r for r in by_subset["test"] if r.sha256 in test_hashes]
    x_te, y_te, rec_te = labelled_arrays(test_records, result.vectors, index, backbone.dim)

    shown = np.array([not is_visitor(r.source) for r in rec_tr], dtype=bool)
    model = TrainedModel(
        info=ModelInfo(
            version="",
            created_at=now_iso(),
            backbone=base_id,
            backbone_key=backbone.key,
            preprocessing=backbone.preprocessing
            | ({"finetuned": tuned_chosen.preprocessing} if tuned_chosen else {}),
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

    proba, match = model.score(x_te) if len(x_te) else (np.zeros((0, 0)),) * 2
    metrics = compute_metrics(
        proba, match, y_te, labels, threshold,
        [r.sha256 for r in rec_te], [r.source for r in rec_te],
    )  # fmt: skip
    metrics["val_scores"] = val_scores
    metrics["fit_seconds"] = fit_seconds
    model.info.metrics = metrics
    version = save_model(settings.home, model, reserved, files)
    return TrainReport(
        version=version,
        head=chosen,
        backbone=backbone.key,
        val_scores=val_scores,
        fit_seconds=fit_seconds,
        threshold=model.info.threshold,
        metrics=metrics,
        too_few=too_few,
        embedded=embedded,
        cached=len(items) * len(spaces) - embedded,
        failures=failures,
        counts=model.info.counts,
    )


def _finetune(
    settings: Settings,
    backbone: Backbone,
    store: DatasetStore,
    by_subset: dict[str, list[ImageRecord]],
    vectors: dict[str, np.ndarray],
    index: dict[str, int],
    out_dir: Path,
    progress: Progress | None,
) -> FinetuneResult:
    """Fine-tune ``backbone``'s network on the training photos (validation photos pick the
    epoch): a face backbone's aligned crops (the face it embeds), or the whole images."""
    images: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    targets: dict[str, list[int]] = {"train": [], "val": []}
    for subset in images:
        for rec in by_subset[subset]:
            if rec.sha256 not in vectors:
                continue  # no face for this backbone: left out like everywhere else
            try:
                rgb = read_image(store.path_of(rec), settings).rgb
                if backbone.uses_faces:
                    faces = backbone.detect(rgb)
                    if not faces:
                        continue
                    crop = backbone.crop(rgb, faces[0])  # the face analyze() embeds
                    if crop is None:
                        continue
                    image = crop
                else:
                    image = stretch(rgb)  # what the network sees; bounds the memory held
            except LookalikeError:
                continue
            images[subset].append(image)
            targets[subset].append(index[rec.label])

    def report(p: FinetuneProgress) -> None:
        if progress:
            progress(FINETUNE, (p.epoch - 1) * p.steps + p.step, p.epochs * p.steps)

    return finetune(
        images["train"],
        np.array(targets["train"], np.int64),
        images["val"],
        np.array(targets["val"], np.int64),
        sorted(index, key=index.__getitem__),
        out_dir,
        network=backbone.id,
        config=FinetuneConfig.from_settings(settings),
        progress=report,
    )


def _light_heads(head: str) -> list[str]:
    return list(HEADS) if head == "auto" else [head]


def _auto_finetunes(
    settings: Settings, backbone: Backbone, by_subset: dict[str, list[ImageRecord]]
) -> bool:
    """Whether ``auto`` also fine-tunes (and keeps the result only if it wins on validation):
    when the settings allow it on this hardware (``auto_finetune``: on 2 CPU cores it takes
    minutes to hours and, measured in docs/benchmarks.md, does not win), every class has
    ``auto_finetune_min_per_class`` training photos, and validation photos pick its epoch."""
    if settings.auto_finetune == "never" or backbone.id not in NETWORKS or not by_subset["val"]:
        return False
    counts = _count(by_subset["train"])
    if min(counts.values(), default=0) < settings.auto_finetune_min_per_class:
        return False
    try:
        require_torch()
    except LookalikeError:
        return False
    if settings.auto_finetune == "gpu":
        import torch

        return bool(torch.cuda.is_available())
    return True


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
