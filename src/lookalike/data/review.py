"""Dataset checks over the embeddings: the photos that may hurt a model, each flagged with a
kind, a score (higher: more likely a problem) and a reason a person can act on.

The per-image checks at import (``data/checks.py``: no face, several faces, too small,
blurred) look at one photo at a time; these look at the photos together, in the embedding
space of the dataset's backbone (read from the embedding cache; only photos missing from it
are embedded):

* ``several_faces``, ``doubtful_face``, ``too_small``, ``too_dark``, ``blurred``: the photo
  itself, from what the import measured (``ImageRecord.faces_found`` and ``quality``;
  thresholds in settings);
* ``near_duplicate``: two photos this similar are one view twice (within a class it weighs
  that view double; across classes one of the two labels is wrong);
* ``outlier``: a photo far from the rest of its class, measured against how spread the class
  is (a robust z-score of its similarity to the class's other photos);
* ``likely_mislabelled``: confident learning (``cleanlab.filter.find_label_issues``) on
  out-of-fold probabilities of a logistic regression over the embeddings, with the class
  the photo most likely belongs to suggested; cleanlab is the ``quality`` extra, and the
  check says so in the report when it is missing;
* ``closer_to_another_class``: a photo nearer another class's centre than its own, with that
  class as the suggested label (a simple, explainable signal, no model fitted);
* ``class_imbalance``: a class with far fewer photos than the typical class.

Each check is a function registered in ``DATASET_CHECKS``; ``review_dataset`` runs them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.data.cache import embedding_cache
from lookalike.data.embed import Embedder
from lookalike.data.store import DatasetStore, ImageRecord, now_iso
from lookalike.fsutil import atomic_write_json
from lookalike.vision.backbones import create_backbone, l2_normalize


@dataclass(frozen=True)
class Flag:
    kind: str
    label: str  # the photo's class (or the class, for class-wide flags)
    score: float  # higher: more likely a problem
    reason: str
    sha256: str | None = None  # None: the flag is about the whole class
    source: str | None = None
    suggested_label: str | None = None


@dataclass
class Embedded:
    """The dataset's photos that have an embedding, row-aligned."""

    records: list[ImageRecord]
    vectors: np.ndarray  # (n, dim), unit rows
    labels: np.ndarray  # (n,) class index
    classes: list[str]


DatasetCheck = Callable[[Embedded, Settings], list[Flag]]


class CheckSkipped(Exception):
    """A check that cannot run here (a missing extra, too little data): said in the report."""


MIN_SPREAD = 0.03  # cosine
BLOCK = 1024  # rows compared at once for near-duplicates
DATASET_CHECKS: dict[str, DatasetCheck] = {}


def dataset_check(name: str) -> Callable[[DatasetCheck], DatasetCheck]:
    def register(fn: DatasetCheck) -> DatasetCheck:
        DATASET_CHECKS[name] = fn
        return fn

    return register


def _below(data: Embedded, kind: str, measure: str, least: float, say: str) -> list[Flag]:
    """A flag for each photo whose import ``measure`` is below ``least``; the score is how
    far below, as a share of ``least``."""
    flags = []
    for record in data.records:
        value = (record.quality or {}).get(measure)
        if value is not None and least > 0 and value < least:
            reason = say.format(value=value, least=least)
            score = (least - value) / least
            flags.append(Flag(kind, record.label, score, reason, record.sha256, record.source))
    return flags


@dataset_check("several_faces")
def several_faces(data: Embedded, settings: Settings) -> list[Flag]:
    """Scored by how much the second face looks like a second person (its detector score
    and size next to the used face's), so two people rank above a spurious detection."""
    flags = []
    for record in data.records:
        if (record.faces_found or 0) >= 2:
            second = (record.quality or {}).get("second_face")
            score = float(second) if second is not None else float(record.faces_found or 0) - 1
            reason = (
                f"{record.faces_found} faces in the photo; the largest was learned as"
                f" {record.label!r}: crop it to one person, or delete it"
            )
            flags.append(
                Flag("several_faces", record.label, score, reason, record.sha256, record.source)
            )
    return flags


@dataset_check("doubtful_face")
def doubtful_face(data: Embedded, settings: Settings) -> list[Flag]:
    """The detector was unsure the face it used is a face (a pattern in a non-face photo)."""
    say = "the detector is unsure this is a face (score {value:.2f}, under {least:.2f})"
    return _below(data, "doubtful_face", "face_score", settings.check_face_score, say)


@dataset_check("too_small")
def too_small(data: Embedded, settings: Settings) -> list[Flag]:
    say = "the face is {value:.0f} px across (under {least:.0f}): too little to learn from"
    return _below(data, "too_small", "face_px", settings.check_small_face_px, say)


@dataset_check("too_dark")
def too_dark(data: Embedded, settings: Settings) -> list[Flag]:
    say = "the face is dark (brightness {value:.0f} of 255, under {least:.0f})"
    return _below(data, "too_dark", "brightness", settings.check_dark_brightness, say)


@dataset_check("blurred")
def blurred(data: Embedded, settings: Settings) -> list[Flag]:
    say = "the face is blurred (sharpness {value:.4f}, under {least:.4f})"
    flags = _below(data, "blurred", "sharpness", settings.check_blur_sharpness, say)
    for record in data.records:  # imported before the measures were kept: the warning
        if record.quality is None and "blurry" in record.warnings:
            reason = "looked blurred when imported"
            flags.append(Flag("blurred", record.label, 0.5, reason, record.sha256, record.source))
    return flags


@dataset_check("near_duplicate")
def near_duplicates(data: Embedded, settings: Settings) -> list[Flag]:
    """Each later photo of a pair above ``check_duplicate_similarity`` (rows compared in
    blocks: memory stays ``BLOCK`` x n whatever the dataset's size)."""
    flags: list[Flag] = []
    flagged: set[int] = set()
    n = len(data.records)
    for start in range(0, n, BLOCK):
        sims = data.vectors[start : start + BLOCK] @ data.vectors.T
        for offset, row in enumerate(sims):
            i = start + offset
            if i in flagged:
                continue
            twins = np.flatnonzero(row[i + 1 :] >= settings.check_duplicate_similarity) + i + 1
            for j in map(int, twins):
                if j in flagged:
                    continue
                flagged.add(j)
                a, b = data.records[i], data.records[j]
                reason = f"near-duplicate of {a.source} (similarity {row[j]:.3f})" + (
                    ""
                    if a.label == b.label
                    else f", which is labelled {a.label!r}: one of the labels is wrong"
                )
                flags.append(
                    Flag("near_duplicate", b.label, float(row[j]), reason, b.sha256, b.source)
                )
    return flags


@dataset_check("outlier")
def outliers(data: Embedded, settings: Settings) -> list[Flag]:
    flags: list[Flag] = []
    for c, label in enumerate(data.classes):
        rows = np.flatnonzero(data.labels == c)
        if len(rows) < 4:
            continue
        own = data.vectors[rows]
        sims = own @ own.T
        np.fill_diagonal(sims, np.nan)
        typical = np.nanmean(sims, axis=1)  # each photo's mean similarity to the others
        median = float(np.median(typical))
        # A robust spread (MAD), but never under a few hundredths: in a tight class, photos
        # a few hundredths apart are all the same face, not outliers.
        spread = max(1.4826 * float(np.median(np.abs(typical - median))), MIN_SPREAD)
        for k, row in enumerate(rows):
            z = (median - float(typical[k])) / spread
            if z >= settings.check_outlier_z:
                record = data.records[row]
                reason = (
                    f"unlike the rest of {label!r}: similarity {typical[k]:.3f} against the"
                    f" class's usual {median:.3f} ({z:.1f} spreads below)"
                )
                flags.append(Flag("outlier", label, z, reason, record.sha256, record.source))
    return flags


@dataset_check("closer_to_another_class")
def closer_to_another_class(data: Embedded, settings: Settings) -> list[Flag]:
    flags: list[Flag] = []
    n_classes = len(data.classes)
    if n_classes < 2:
        return flags
    sums = np.zeros((n_classes, data.vectors.shape[1]), np.float64)
    np.add.at(sums, data.labels, data.vectors)
    counts = np.bincount(data.labels, minlength=n_classes).astype(np.float64)
    scores = data.vectors @ l2_normalize(sums / np.maximum(counts, 1)[:, None]).T  # (n, C)
    scores[:, counts == 0] = -np.inf
    rows = np.arange(len(data.records))
    own = data.labels
    # Its own class's centre without the photo itself (a photo always looks like itself).
    without = l2_normalize((sums[own] - data.vectors) / np.maximum(counts[own] - 1, 1)[:, None])
    scores[rows, own] = np.einsum("ij,ij->i", without, data.vectors)
    best = np.argmax(scores, axis=1)
    margins = scores[rows, best] - scores[rows, own]
    for row in np.flatnonzero((best != own) & (margins >= settings.check_mislabel_margin)):
        if counts[own[row]] < 2:
            continue
        record, b, o = data.records[row], int(best[row]), int(own[row])
        reason = (
            f"closer to {data.classes[b]!r} ({scores[row, b]:.3f}) than to its own class"
            f" {data.classes[o]!r} ({scores[row, o]:.3f})"
        )
        flags.append(
            Flag(
                "closer_to_another_class",
                record.label,
                float(margins[row]),
                reason,
                record.sha256,
                record.source,
                suggested_label=data.classes[b],
            )
        )
    return flags


def out_of_fold_probabilities(data: Embedded, folds: int, seed: int = 0) -> np.ndarray:
    """Each photo's class probabilities from a logistic regression that never saw it
    (stratified folds), as confident learning needs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model = LogisticRegression(C=10.0, max_iter=2000)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba: np.ndarray = cross_val_predict(
        model, data.vectors, data.labels, cv=cv, method="predict_proba"
    )
    return proba


@dataset_check("likely_mislabelled")
def likely_mislabelled(data: Embedded, settings: Settings) -> list[Flag]:
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        raise CheckSkipped(
            "cleanlab is not installed: pip install 'lookalike[quality]' to find mislabelled"
            " photos by confident learning (closer_to_another_class still runs)."
        ) from None
    counts = np.bincount(data.labels, minlength=len(data.classes))
    if len(data.classes) < 2 or counts.min() < 2:
        small = [data.classes[c] for c in np.flatnonzero(counts < 2)]
        raise CheckSkipped(
            "confident learning needs at least 2 classes of at least 2 photos each"
            + (f"; too few: {', '.join(small[:5])}" if small else "")
        )
    folds = int(min(settings.check_mislabel_folds, counts.min()))
    proba = out_of_fold_probabilities(data, folds)
    # n_jobs=1: cleanlab otherwise forks a process pool, which deadlocks when the checks run
    # inside a threaded server (a retrain in the web service's job worker).
    issues = find_label_issues(
        labels=data.labels,
        pred_probs=proba,
        return_indices_ranked_by="self_confidence",
        n_jobs=1,
    )
    flags = []
    for row in map(int, issues):
        record, own = data.records[row], int(data.labels[row])
        best = int(np.argmax(proba[row]))
        if best == own:
            continue
        reason = (
            f"a model that never saw it gives {data.classes[best]!r} {proba[row, best]:.2f} and"
            f" its label {data.classes[own]!r} {proba[row, own]:.2f}"
        )
        flags.append(
            Flag(
                "likely_mislabelled",
                record.label,
                round(1.0 - float(proba[row, own]), 4),
                reason,
                record.sha256,
                record.source,
                suggested_label=data.classes[best],
            )
        )
    return flags


@dataset_check("class_imbalance")
def class_imbalance(data: Embedded, settings: Settings) -> list[Flag]:
    counts = np.bincount(data.labels, minlength=len(data.classes))
    if len(counts) < 2:
        return []
    typical = float(np.median(counts))
    flags = []
    for c, label in enumerate(data.classes):
        share = counts[c] / typical if typical else 1.0
        if share < settings.check_imbalance_share:
            reason = (
                f"{counts[c]} photos against {typical:.0f} for the typical class: the model"
                f" will see {label!r} rarely; add photos of it"
            )
            flags.append(Flag("class_imbalance", label, float(1 - share), reason))
    return flags


@dataclass
class Review:
    images: int
    classes: int
    backbone: str
    flags: list[Flag] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # check -> why it did not run

    def counts(self) -> dict[str, int]:
        out = {kind: 0 for kind in DATASET_CHECKS}
        for flag in self.flags:
            out[flag.kind] += 1
        return out

    def summary(self) -> str:
        """One line: how many photos each check flagged."""
        found = [f"{n} {kind.replace('_', ' ')}" for kind, n in self.counts().items() if n]
        return ", ".join(found) if found else "nothing flagged"

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "classes": self.classes,
            "backbone": self.backbone,
            "counts": self.counts(),
            "skipped": self.skipped,
            "flags": [asdict(f) for f in self.flags],
        }


def embedded(settings: Settings, backbone_name: str | None = None) -> tuple[Embedded, str]:
    """The catalog's photos with their embeddings (from the cache; misses are embedded)."""
    store = DatasetStore(settings)
    catalog = store.load()
    backbone = create_backbone(backbone_name or settings.backbone, settings)
    embedder = Embedder(backbone, embedding_cache(settings.data_dir))
    records = sorted(catalog.images.values(), key=lambda r: (r.label, r.source))
    result = embedder.embed_files({r.sha256: store.path_of(r) for r in records})
    kept = [r for r in records if r.sha256 in result.vectors]
    classes = sorted({r.label for r in kept})
    index = {label: i for i, label in enumerate(classes)}
    dim = backbone.dim
    vectors = (
        l2_normalize(np.stack([result.vectors[r.sha256] for r in kept]))
        if kept
        else np.zeros((0, dim), np.float32)
    )
    labels = np.array([index[r.label] for r in kept], np.int64)
    return Embedded(kept, vectors, labels, classes), backbone.key


def review_dataset(settings: Settings, backbone_name: str | None = None) -> Review:
    """Every registered check over the dataset; flags worst first within each kind."""
    data, key = embedded(settings, backbone_name)
    review = Review(images=len(data.records), classes=len(data.classes), backbone=key)
    for name, check in DATASET_CHECKS.items():
        try:
            review.flags += sorted(check(data, settings), key=lambda f: -f.score)
        except CheckSkipped as why:
            review.skipped[name] = str(why)
    return review


def write_review(review: Review, path: Path) -> Path:
    atomic_write_json(path, {**review.to_dict(), "written_at": now_iso()})
    return path


def check_and_report(settings: Settings, backbone_name: str | None = None) -> Review:
    """Run every check and write the report the admin pages read (after each import and
    retrain, and by ``lookalike check``)."""
    review = review_dataset(settings, backbone_name)
    write_review(review, settings.data_dir.dataset_check)
    return review
