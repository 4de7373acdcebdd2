"""Resemblance: who a visitor looks like, how strongly, and when two names are a tie.

Almost every visitor is nobody in the gallery, so their answer is not an identity decision
but a ranking of the classes by resemblance, with a strength a person understands.

* **Scores.** Cosine similarity between the visitor's face and each class's centroid, both
  taken relative to the gallery's mean face (centred, then L2-normalised). Chosen by
  measurement (``bench/resemblance.py``): on ORL strangers the centred centroid gave the most
  stable answers of 1-NN, top-k mean, centroid, CSLS, class z-norm, within-class whitening,
  a Wiener filter and pose regression (single-photo modal share 0.71 against 0.68 for 1-NN;
  the learnt metrics overfit a gallery of a few dozen people).
* **Strength**, calibrated against strangers with no extra data: each class in turn is left
  out and its photos are scored against the other classes; the best score of each such
  "stranger" photo forms the reference distribution, stored with the model. A visitor's
  strength for a class is the share of that distribution below their score: "resembles X
  more than 87% of people resemble anyone here".
* **Ties.** The same leave-one-class-out photos measure the noise: how much the gap between a
  person's top two classes moves from one photo of them to the next (its standard deviation,
  pooled over the gallery's people). When a visitor's top two are closer than ``tie_z`` of
  that noise (divided by the square root of the number of looks averaged), noise would pick
  the winner, so the answer names both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.config import DEFAULT_TIE_Z
from lookalike.vision.backbones import l2_normalize

__all__ = ["DEFAULT_TIE_Z", "Resemblance", "strength_phrase", "strength_words"]

# Used when the gallery has no class with two photos to measure the noise on.
DEFAULT_NOISE = 0.05


@dataclass
class Resemblance:
    centre: np.ndarray  # (dim,) the gallery's mean embedding
    centroids: np.ndarray  # (classes, dim) centred, L2-normalised class means
    reference: np.ndarray  # sorted best scores of leave-one-class-out "strangers"
    noise: float  # SD of the top-two gap between photos of one person
    tie_z: float  # a gap below tie_z * noise / sqrt(looks) is a tie

    @classmethod
    def fit(
        cls, gallery: np.ndarray, labels: np.ndarray, n_classes: int, tie_z: float
    ) -> Resemblance:
        gallery = np.asarray(gallery, np.float32)
        labels = np.asarray(labels, np.int64)
        dim = gallery.shape[1] if gallery.ndim == 2 else 0
        centre = gallery.mean(axis=0) if len(gallery) else np.zeros(dim, np.float32)
        centred = l2_normalize(gallery - centre)
        centroids = np.zeros((n_classes, dim), np.float32)
        for c in range(n_classes):
            rows = centred[labels == c]
            if len(rows):
                centroids[c] = l2_normalize(rows.mean(axis=0))
        model = cls(centre.astype(np.float32), centroids, np.zeros(0, np.float32), 0.0, tie_z)
        model.reference, model.noise = model._calibrate(centred, labels)
        return model

    def _calibrate(self, centred: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
        """Leave each class out: its photos' best scores among the others (the reference) and
        the photo-to-photo spread of the gap between their top two classes (the noise)."""
        present = np.unique(labels)
        if len(present) < 2:
            return np.zeros(0, np.float32), DEFAULT_NOISE
        scores = centred @ self.centroids.T
        absent = np.setdiff1d(np.arange(len(self.centroids)), present)
        scores[:, absent] = -np.inf  # classes without a gallery photo never answer
        best: list[np.ndarray] = []
        variances: list[float] = []
        for c in present:
            own = scores[labels == c].copy()
            own[:, c] = -np.inf
            best.append(own.max(axis=1))
            if len(own) >= 2 and len(present) >= 3:
                a, b = np.argsort(-own.mean(axis=0))[:2]
                variances.append(float(np.var(own[:, a] - own[:, b], ddof=1)))
        noise = float(np.sqrt(np.mean(variances))) if variances else DEFAULT_NOISE
        return np.sort(np.concatenate(best)).astype(np.float32), noise

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Embeddings (n, dim) -> resemblance scores (n, classes)."""
        x = np.atleast_2d(np.asarray(x, np.float32))
        scores: np.ndarray = l2_normalize(x - self.centre) @ self.centroids.T
        return scores

    def strength(self, scores: np.ndarray) -> np.ndarray:
        """Share of the strangers' best scores below ``scores`` (0..1)."""
        if len(self.reference) == 0:
            return np.full(np.shape(scores), 0.5)
        return np.searchsorted(self.reference, scores, side="left") / len(self.reference)

    def tie_gap(self, looks: int = 1) -> float:
        """Top-two gaps below this are ties, for a query averaged over ``looks`` photos."""
        return float(self.tie_z * self.noise / np.sqrt(max(1, looks)))

    # -- persistence (arrays in the model's npz, numbers in model.json) ---------------------
    def state(self) -> dict[str, np.ndarray]:
        return {
            "centre": self.centre,
            "centroids": self.centroids,
            "reference": self.reference,
        }

    def params(self) -> dict[str, Any]:
        return {
            "method": "centred centroid cosine; strength against leave-one-class-out strangers",
            "noise": round(self.noise, 6),
            "tie_z": self.tie_z,
            "strangers": len(self.reference),
        }

    @classmethod
    def restore(cls, state: dict[str, np.ndarray], params: dict[str, Any]) -> Resemblance:
        return cls(
            centre=state["centre"].astype(np.float32),
            centroids=state["centroids"].astype(np.float32),
            reference=state["reference"].astype(np.float32),
            noise=float(params["noise"]),
            tie_z=float(params["tie_z"]),
        )


def strength_words(strength: float) -> str:
    """Plain words for a strength (the share of strangers who resemble anyone less)."""
    if strength >= 0.9:
        return "very strong"
    if strength >= 0.7:
        return "strong"
    if strength >= 0.4:
        return "moderate"
    return "slight"


def strength_phrase(strength: float) -> str:
    """What a strength means, in words ("stronger than 87% of people's best match here")."""
    if strength >= 0.995:
        return "stronger than nearly everyone's best match here"
    if strength < 0.005:
        return "weaker than nearly everyone's best match here"
    return f"stronger than {strength:.0%} of people's best match here"
