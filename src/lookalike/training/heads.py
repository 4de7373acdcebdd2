"""Heads: light classifiers trained on cached embeddings, in milliseconds on a CPU.

Fitting may use scikit-learn; prediction is plain numpy over saved arrays, so serving loads
no pickles and needs neither scikit-learn nor torch. A registry (``create_head``) in the same
style as the backbones.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from lookalike.errors import InvalidInput


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray, strangers: bool = False) -> float:
    """Scale ``s`` minimising the NLL of softmax(s * logits) on held-out data (calibration).

    ``strangers``: also ask that a photo scored without its own class (what a visitor who is
    nobody in the gallery looks like to the model) gets flat probabilities over the others.
    Without that term, a validation set the head gets all right pushes ``s`` to the end of
    the grid and every stranger is shown as a 99% lookalike of someone.
    """
    if len(y) == 0:
        return 1.0
    rows = np.arange(len(y))
    masked = logits.astype(np.float64).copy()
    masked[rows, y] = -np.inf
    others = np.isfinite(masked)
    grid = np.logspace(-2, 3, 121)
    losses = []
    for s in grid:
        loss = -np.log(softmax(s * logits)[rows, y] + 1e-12).mean()
        if strangers and logits.shape[1] > 2:
            p = softmax(s * np.where(others, masked, -1e30))
            flat = -(np.where(others, np.log(p + 1e-12), 0.0).sum(axis=1) / others.sum(axis=1))
            loss += float((flat - np.log(others.sum(axis=1))).mean())  # 0 when flat
        losses.append(loss)
    return float(grid[int(np.argmin(losses))])


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


class Head:
    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> None:
        raise NotImplementedError

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

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        present = np.unique(y)
        if len(present) < 2:
            raise InvalidInput(
                "A logistic head needs at least two classes with training images.",
                code="train.too_few_classes",
            )
        model = LogisticRegression(C=self.c, class_weight="balanced", max_iter=3000)
        with warnings.catch_warnings():
            # One photo per class is a legitimate few-shot setup, not "a regression problem".
            warnings.filterwarnings("ignore", message="The number of unique classes")
            model.fit(x, y)
        # Scatter into the full class range (classes absent from training never win).
        self.coef = np.zeros((n_classes, x.shape[1]), np.float32)
        self.intercept = np.full(n_classes, -1e4, np.float32)
        coef, intercept = model.coef_, model.intercept_
        if coef.shape[0] == 1:  # two classes: sklearn keeps one row, the logit of classes_[1]
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.concatenate([-intercept / 2, intercept / 2])
        self.coef[model.classes_] = coef
        self.intercept[model.classes_] = intercept
        if x_val is not None and y_val is not None and len(y_val):
            self.temperature = fit_temperature(self._logits(x_val), y_val, strangers=True)

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

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> None:
        self.vectors = np.asarray(x, np.float32)
        self.labels = np.asarray(y, np.int64)
        self.n_classes = n_classes
        self._agg = None
        if x_val is not None and y_val is not None and len(y_val):
            self.scale = fit_temperature(
                self.class_scores(x_val).astype(np.float64), y_val, strangers=True
            )

    @property
    def aggregator(self) -> ClassAggregator:
        if self._agg is None:
            self._agg = ClassAggregator(self.labels, self.n_classes, self.k)
        return self._agg

    def class_scores(self, x: np.ndarray) -> np.ndarray:
        return self.aggregator.scores(x @ self.vectors.T)

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


HEADS: dict[str, Callable[..., Head]] = {"logistic": LogisticHead, "gallery": GalleryHead}


def list_heads() -> dict[str, str]:
    return {name: getattr(factory, "description", "") for name, factory in HEADS.items()}


def create_head(name: str, **kwargs: Any) -> Head:
    if name not in HEADS:
        raise InvalidInput(
            f"Unknown head {name!r}. Expected one of: {', '.join(HEADS)} (or 'auto').",
            code="train.unknown_head",
        )
    return HEADS[name](**kwargs)


def restore_head(kind: str, state: dict[str, np.ndarray], params: dict[str, Any]) -> Head:
    if kind not in HEADS:
        raise InvalidInput(f"Unknown head {kind!r} in a saved model.", code="model.unknown_head")
    factory = HEADS[kind]
    assert isinstance(factory, type) and issubclass(factory, Head)
    return factory.restore(state, params)
