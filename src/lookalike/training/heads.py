"""Fitting heads: light classifiers trained on cached embeddings, in milliseconds on a CPU.

Fitting may use scikit-learn (imported only inside ``fit``). Each head here is the class that
predicts (``lookalike.scoring.heads``, numpy only, what a saved model restores) plus its
``fit``. A registry (``create_head``) in the same style as the backbones.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from lookalike.errors import InvalidInput
from lookalike.scoring import heads as scoring
from lookalike.scoring.heads import softmax

# Validation photos the temperature is fitted on, at most: the grid search costs 121 softmaxes
# over rows x classes (at 7,500 photos and 1,000 classes, 25 s of a 50k-photo training).
CALIBRATION_MAX_ROWS = 3000


def fit_temperature(logits: np.ndarray, y: np.ndarray, strangers: bool = False) -> float:
    """Scale ``s`` minimising the NLL of softmax(s * logits) on held-out data (calibration).

    ``strangers``: also ask that a photo scored without its own class (what a visitor who is
    nobody in the gallery looks like to the model) gets flat probabilities over the others.
    Without that term, a validation set the head gets all right pushes ``s`` to the end of
    the grid and every stranger is shown as a 99% lookalike of someone.
    """
    if len(y) == 0:
        return 1.0
    if len(y) > CALIBRATION_MAX_ROWS:  # one number: a seeded sample estimates it as well
        keep = np.random.default_rng(0).choice(len(y), CALIBRATION_MAX_ROWS, replace=False)
        logits, y = logits[keep], y[keep]
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


class Head(scoring.Head):
    """A head that can be fitted (its prediction is the ``scoring`` class's)."""

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> None:
        raise NotImplementedError


class LogisticHead(scoring.LogisticHead, Head):
    """Multinomial logistic regression (scikit-learn), class-balanced, temperature-calibrated
    on validation."""

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


class GalleryHead(scoring.GalleryHead, Head):
    """The cosine gallery: keeps the training vectors, calibrates its scale on validation."""

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


class FinetuneHead(scoring.FinetuneHead, Head):
    """The fine-tuned network's classifier (``coef``, ``intercept`` from the fine-tuning);
    fitting only calibrates its temperature on validation. Never part of ``auto``: it needs
    the network trained first (``training.train``)."""

    def __init__(
        self, coef: np.ndarray, intercept: np.ndarray, training: dict[str, Any] | None = None
    ) -> None:
        super().__init__(training=training)
        self.coef = np.asarray(coef, np.float32)
        self.intercept = np.asarray(intercept, np.float32)

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> None:
        if x_val is not None and y_val is not None and len(y_val):
            self.temperature = fit_temperature(self._logits(x_val), y_val, strangers=True)


# The heads training may fit (each kind is one ``scoring.restore_head`` can restore).
HEADS: dict[str, type[Head]] = {"logistic": LogisticHead, "gallery": GalleryHead}


def list_heads() -> dict[str, str]:
    return {name: getattr(factory, "description", "") for name, factory in HEADS.items()}


def create_head(name: str, **kwargs: Any) -> Head:
    if name not in HEADS:
        raise InvalidInput(
            f"Unknown head {name!r}. Expected one of: {', '.join(HEADS)} (or 'auto').",
            code="train.unknown_head",
        )
    return HEADS[name](**kwargs)
