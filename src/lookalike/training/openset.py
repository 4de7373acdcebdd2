"""The open-set rule: a weak best match is answered "no strong match".

The match score is the gallery aggregate (mean top-k cosine similarity) of the predicted
class. Its threshold is chosen on held-out data: genuine scores (a photo against its own
class, leaving the photo itself out) versus impostor scores (the best other class, which is
what a stranger gets), at the point that best separates the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lookalike.scoring.heads import ClassAggregator


def genuine_impostor(
    agg: ClassAggregator,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    queries: np.ndarray | None = None,
    query_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores from leave-one-out on the gallery plus held-out queries."""
    genuine: list[np.ndarray] = []
    impostor: list[np.ndarray] = []

    def collect(scores: np.ndarray, labels: np.ndarray) -> None:
        rows = np.arange(len(labels))
        own = scores[rows, labels]
        others = scores.copy()
        others[rows, labels] = -np.inf
        valid = own > -1.0  # a class with a single photo has no leave-one-out score
        genuine.append(own[valid])
        impostor.append(others.max(axis=1))

    if len(gallery):
        collect(agg.scores(gallery @ gallery.T, exclude_self=True), gallery_labels)
    if queries is not None and query_labels is not None and len(queries):
        collect(agg.scores(queries @ gallery.T), query_labels)
    return np.concatenate(genuine or [np.zeros(0)]), np.concatenate(impostor or [np.zeros(0)])


def choose_threshold(
    genuine: np.ndarray, impostor: np.ndarray, default: float
) -> tuple[float, dict[str, Any]]:
    """Threshold maximising (genuine accepted + impostors refused) / 2; ``default`` if no data."""
    if len(genuine) == 0 or len(impostor) == 0:
        return default, {"method": "default", "genuine": len(genuine), "impostor": len(impostor)}
    candidates = np.unique(np.concatenate([genuine, impostor]))
    mids = np.concatenate([[candidates[0] - 1e-3], (candidates[1:] + candidates[:-1]) / 2])
    accept = (genuine[None, :] >= mids[:, None]).mean(axis=1)
    refuse = (impostor[None, :] < mids[:, None]).mean(axis=1)
    balanced = (accept + refuse) / 2
    best = int(np.argmax(balanced))
    # Among equally good thresholds take the middle of the plateau (more margin both ways).
    ties = np.flatnonzero(np.isclose(balanced, balanced[best]))
    best = int(ties[len(ties) // 2])
    return float(mids[best]), {
        "method": "balanced accuracy on leave-one-out gallery + validation",
        "genuine": len(genuine),
        "impostor": len(impostor),
        "genuine_accepted": round(float(accept[best]), 4),
        "impostor_refused": round(float(refuse[best]), 4),
    }
