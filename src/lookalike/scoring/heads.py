"""Heads as a saved model uses them: prediction is plain numpy over saved arrays, so serving
loads no pickles and needs neither scikit-learn nor torch.

Each head kind is a class here with ``predict_proba``, ``state`` (its arrays, saved in the
npz), ``params`` (JSON) and ``restore``; ``restore_head`` rebuilds the kind a model names.
Fitting is training's business: ``lookalike.training.heads`` subclasses these with ``fit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from lookalike.errors import InvalidInput
from lookalike.scoring.index import VectorIndex, index_of

# Rows of queries scored against a gallery at a time: a large set of queries against a large
# gallery (a 15k-photo test set against 100k references: 6 GB) is never held whole.
BLOCK_ROWS = 1024
# Gallery photos one query looks at when the gallery is searched by an index (see
# ``ClassAggregator.near_scores``): the classes they belong to are scored exactly.
NEAR_CANDIDATES = 256


def in_blocks(x: np.ndarray, score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``score`` applied to ``x`` a block of ``BLOCK_ROWS`` rows at a time, concatenated."""
    if len(x) <= BLOCK_ROWS:
        return score(x)
    return np.concatenate([score(x[i : i + BLOCK_ROWS]) for i in range(0, len(x), BLOCK_ROWS)])


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e: np.ndarray = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


class ClassAggregator:
    """Per-class scores from cosine similarity to a gallery: mean of each class's top-k.

    Scoring a class by an aggregate over its photos (not the single nearest one) makes the
    answer for a stranger stable across their photos.
    """

    def __init__(self, labels: np.ndarray, n_classes: int, k: int) -> None:
        self.n_classes = n_classes
        self.k = k
        counts = np.bincount(labels, minlength=n_classes)
        width = max(1, int(counts.max(initial=1)))
        self.index = np.full((n_classes, width), -1, dtype=np.int64)
        fill = np.zeros(n_classes, dtype=np.int64)
        for i, c in enumerate(labels):
            self.index[c, fill[c]] = i
            fill[c] += 1
        self.take = np.minimum(counts, k)  # a class with fewer photos averages what it has
        self.labels = np.asarray(labels, np.int64)

    def scores(self, sims: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """``sims`` (n, gallery) -> (n, n_classes). ``exclude_self``: leave-one-out on gallery."""
        if exclude_self:
            sims = sims.copy()
            np.fill_diagonal(sims, -np.inf)
        # Bounded memory: the padded block is rows x classes x largest class.
        rows = max(1, 4_000_000 // max(1, self.index.size))
        if len(sims) > rows:
            return np.concatenate(
                [self.scores(sims[i : i + rows]) for i in range(0, len(sims), rows)]
            )
        padded = np.where(self.index >= 0, sims[:, np.clip(self.index, 0, None)], -np.inf)
        return self._top_k_mean(padded)

    def _top_k_mean(self, padded: np.ndarray) -> np.ndarray:
        """(..., width) similarities of each class's photos (-inf: padding) -> the mean of
        each class's top k (-1 for a class with none)."""
        width = padded.shape[-1]
        kk = min(self.k, width)
        top = -np.partition(-padded, kk - 1, axis=-1)[..., :kk]  # k largest, unsorted
        top = np.sort(top, axis=-1)[..., ::-1]
        finite = np.isfinite(top)
        take = finite.sum(axis=-1)
        total = np.where(finite, top, 0.0).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(take > 0, total / np.maximum(take, 1), -1.0)
        return out.astype(np.float32)

    def near_scores(
        self, query: np.ndarray, vectors: np.ndarray, search: VectorIndex, candidates: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One query's class scores when the gallery (``vectors``) is too large to compare
        with every photo: the ``candidates`` nearest photos by ``search`` name the classes
        scored exactly (every photo of theirs compared); every other class gets the farthest
        candidate's similarity (what it would at most score if the search were exact; the
        index is approximate, so an estimate). The best class and the ones shown are among
        the candidates' (``tests/test_heads.py`` checks it against every photo compared).
        Returns (scores (n_classes,), the candidates' gallery rows and similarities, nearest
        first)."""
        sims, ids = search.search(query.reshape(1, -1), candidates)
        found = ids[0] >= 0
        sims, ids = sims[0][found], ids[0][found]
        floor = float(sims.min()) if len(sims) else -1.0
        scores = np.where(self.take > 0, floor, -1.0).astype(np.float32)
        near = np.unique(self.labels[ids])  # the candidates' classes
        if len(near):
            rows_of = self.index[near]  # (classes, width) gallery rows, -1: padding
            own = vectors[np.clip(rows_of, 0, None)] @ query.astype(np.float32)
            scores[near] = self._top_k_mean(np.where(rows_of >= 0, own, -np.inf))
        order = np.argsort(-sims, kind="stable")
        return scores, ids[order], sims[order]


class Head:
    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """Arrays saved with the model (npz, no pickle)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """JSON-able hyper-parameters saved with the model."""
        raise NotImplementedError

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], params: dict[str, Any]) -> Head:
        raise NotImplementedError


class LogisticHead(Head):
    """Multinomial logistic regression, class-balanced, temperature-calibrated on validation."""

    kind = "logistic"
    description = "multinomial logistic regression (class-balanced, calibrated)"

    def __init__(self, c: float = 10.0) -> None:
        self.c = c
        self.coef = np.zeros((0, 0), np.float32)
        self.intercept = np.zeros(0, np.float32)
        self.temperature = 1.0

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.coef.T + self.intercept, dtype=np.float64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.temperature * self._logits(x)).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": self.intercept}

    def params(self) -> dict[str, Any]:
        return {"c": self.c, "temperature": self.temperature}

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], params: dict[str, Any]) -> Head:
        head = cls(c=float(params["c"]))
        head.coef = state["coef"].astype(np.float32)
        head.intercept = state["intercept"].astype(np.float32)
        head.temperature = float(params["temperature"])
        return head


class GalleryHead(Head):
    """Cosine k-nearest-neighbour gallery: class score = mean of its top-k similarities.

    New people are matchable as soon as their photos are in the gallery (no refit).
    """

    kind = "gallery"
    description = "cosine gallery, class = mean of its top-k similarities"

    def __init__(self, k: int = 3) -> None:
        self.k = k
        self.scale = 20.0
        self.vectors = np.zeros((0, 0), np.float32)
        self.labels = np.zeros(0, np.int64)
        self.n_classes = 0
        self._agg: ClassAggregator | None = None
        self._search: VectorIndex | None = None  # set by ``index_vectors``

    @property
    def aggregator(self) -> ClassAggregator:
        if self._agg is None:
            self._agg = ClassAggregator(self.labels, self.n_classes, self.k)
        return self._agg

    def index_vectors(self, min_size: int) -> None:
        """Score one query through a faiss index of the photos when there are at least
        ``min_size`` of them (serving a large gallery; see ``ClassAggregator.near_scores``)."""
        if min_size and len(self.vectors) >= min_size:
            self._search = index_of(self.vectors, min_size)

    def class_scores(self, x: np.ndarray) -> np.ndarray:
        if self._search is not None and len(x) == 1:
            scores, _, _ = self.aggregator.near_scores(
                x[0], self.vectors, self._search, NEAR_CANDIDATES
            )
            return scores[None]
        return in_blocks(x, lambda rows: self.aggregator.scores(rows @ self.vectors.T))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.scale * self.class_scores(x).astype(np.float64)).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors, "labels": self.labels}

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "scale": self.scale, "n_classes": self.n_classes}

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], params: dict[str, Any]) -> Head:
        head = cls(k=int(params["k"]))
        head.vectors = state["vectors"].astype(np.float32)
        head.labels = state["labels"].astype(np.int64)
        head.scale = float(params["scale"])
        head.n_classes = int(params["n_classes"])
        return head


class FinetuneHead(LogisticHead):
    """A fine-tuned network's own classifier: linear on its embedding, so a logistic head
    (temperature-calibrated on validation like the others). ``training``: the fine-tuning's
    figures (epochs, losses, recipe), kept in the model's ``head_params``."""

    kind = "finetune"
    description = "the fine-tuned network's classifier (logistic over its embedding)"

    def __init__(self, c: float = 0.0, training: dict[str, Any] | None = None) -> None:
        super().__init__(c)
        self.training = training or {}

    def params(self) -> dict[str, Any]:
        return {**super().params(), "training": self.training}

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], params: dict[str, Any]) -> Head:
        head = super().restore(state, params)
        assert isinstance(head, FinetuneHead)
        head.training = dict(params.get("training", {}))
        return head


# The head kinds a saved model may name, and the class that restores each.
RESTORABLE: dict[str, type[Head]] = {
    "logistic": LogisticHead,
    "gallery": GalleryHead,
    "finetune": FinetuneHead,
}


def restore_head(kind: str, state: dict[str, np.ndarray], params: dict[str, Any]) -> Head:
    if kind not in RESTORABLE:
        raise InvalidInput(f"Unknown head {kind!r} in a saved model.", code="model.unknown_head")
    return RESTORABLE[kind].restore(state, params)
