"""The open-set rule: a weak best match is answered "no strong match".

The match score is the gallery aggregate (mean top-k cosine similarity) of the predicted
class. Its threshold is chosen on held-out data: genuine scores (a photo against its own
class, leaving the photo itself out) versus impostor scores (the best other class, which is
what a stranger gets), at the point that best separates the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lookalike.scoring.heads import BLOCK_ROWS, ClassAggregator

# Memory and time stay bounded on large datasets: similarities are computed a block of rows
# at a time (a 60k-photo gallery against itself would be 14 GB at once), and leave-one-out
# runs on at most LEAVE_ONE_OUT_MAX gallery photos (a seeded sample; every photo still counts
# as a neighbour), which estimates the genuine/impostor score distributions as well as all
# of them would at a fraction of the n x n work.
LEAVE_ONE_OUT_MAX = 5000


def genuine_impostor(
    agg: ClassAggregator,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    queries: np.ndarray | None = None,
    query_labels: np.ndarray | None = None,
    *,
    max_leave_one_out: int = LEAVE_ONE_OUT_MAX,
    block_rows: int = BLOCK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores from leave-one-out on the gallery (on a seeded sample of
    at most ``max_leave_one_out`` of its photos) plus held-out queries."""
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

    left_out = np.arange(len(gallery))
    if len(left_out) > max_leave_one_out:
        rng = np.random.default_rng(0)
        left_out = np.sort(rng.choice(len(gallery), max_leave_one_out, replace=False))
    for start in range(0, len(left_out), block_rows):
        rows = left_out[start : start + block_rows]
        sims = gallery[rows] @ gallery.T
        sims[np.arange(len(rows)), rows] = -np.inf  # the photo itself is left out
        collect(agg.scores(sims), gallery_labels[rows])
    if queries is not None and query_labels is not None:
        for start in range(0, len(queries), block_rows):
            block = slice(start, start + block_rows)
            collect(agg.scores(queries[block] @ gallery.T), query_labels[block])
    return np.concatenate(genuine or [np.zeros(0)]), np.concatenate(impostor or [np.zeros(0)])


def choose_threshold(
    genuine: np.ndarray, impostor: np.ndarray, default: float
) -> tuple[float, dict[str, Any]]:
    """Threshold maximising (genuine accepted + impostors refused) / 2; ``default`` if no data."""
    if len(genuine) == 0 or len(impostor) == 0:
        return default, {"method": "default", "genuine": len(genuine), "impostor": len(impostor)}
    candidates = np.unique(np.concatenate([genuine, impostor]))
    mids = np.concatenate([[candidates[0] - 1e-3], (candidates[1:] + candidates[:-1]) / 2])
    # Shares by binary search in the sorted scores (a candidates x scores comparison would
    # need gigabytes for a large dataset's hundred thousand scores).
    accept = 1.0 - np.searchsorted(np.sort(genuine), mids, side="left") / len(genuine)
    refuse = np.searchsorted(np.sort(impostor), mids, side="left") / len(impostor)
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
