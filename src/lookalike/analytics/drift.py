"""How far a day's answers moved from what the model's held-out test photos looked like.

Embeddings are never logged (privacy: without consent nothing of a photo is kept), so drift is
measured on what is logged: the confidences. Each model version's registry metrics carry a
``reference`` (``lookalike.training.evaluate``): the deciles (levels 0, 0.1, ..., 1) of the
best class's probability and of the match score on its held-out test photos.

The day's score is a Kolmogorov-Smirnov distance measured on a grid: at each inner edge e of
the rollup's histogram bins (match score: 0.05, 0.10, ..., 0.95; probability: 0.1, ..., 0.9),

    D = max over e of | F_day(e) - F_ref(e) |

where F_day(e) is the share of the day's answers below e (exact, from the histograms) and
F_ref(e) the reference's distribution function, linear between its deciles (0 below the
minimum, 1 from the maximum on). ``score`` = the larger of D(match score) and D(probability),
between 0 (same distribution, as far as the grid sees) and 1 (disjoint); a day whose score is
above the ``drift_threshold`` setting is flagged ``over``: a retrain is worth considering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def reference_cdf(levels: Sequence[float], values: Sequence[float], x: float) -> float:
    """F(x) of a distribution given by its quantiles (``values`` at ``levels``), linear
    between them."""
    if not values or x < values[0]:
        return 0.0
    if x >= values[-1]:
        return 1.0
    j = max(i for i in range(len(values) - 1) if values[i] <= x)
    lo, hi = values[j], values[j + 1]
    return levels[j] + (levels[j + 1] - levels[j]) * (x - lo) / (hi - lo)


def ks_on_grid(
    histogram: Sequence[int],
    edges: Sequence[float],
    levels: Sequence[float],
    values: Sequence[float],
) -> float | None:
    """max |F_day(e) - F_ref(e)| over the inner ``edges`` of ``histogram``'s bins."""
    n = sum(histogram)
    if n == 0 or len(values) < 2:
        return None
    below = 0
    distance = 0.0
    for i, edge in enumerate(edges):
        below += histogram[i]
        distance = max(distance, abs(below / n - reference_cdf(levels, values, edge)))
    return distance


def usable(reference: Any) -> dict[str, Any] | None:
    """The reference if it has what the score needs (quantiles, probability, match_score)."""
    if not isinstance(reference, dict):
        return None
    parts = [reference.get(k) for k in ("quantiles", "probability", "match_score")]
    if not all(isinstance(p, list) and len(p) >= 2 for p in parts):
        return None
    lengths = {len(p) for p in parts if isinstance(p, list)}
    return reference if len(lengths) == 1 else None


def day_score(
    reference: dict[str, Any] | None,
    p_histogram: Sequence[int],
    p_edges: Sequence[float],
    m_histogram: Sequence[int],
    m_edges: Sequence[float],
) -> tuple[float | None, float | None, float | None]:
    """(score, D on match scores, D on probabilities); None without a reference or rows."""
    if reference is None:
        return None, None, None
    levels = reference["quantiles"]
    d_match = ks_on_grid(m_histogram, m_edges, levels, reference["match_score"])
    d_prob = ks_on_grid(p_histogram, p_edges, levels, reference["probability"])
    parts = [d for d in (d_match, d_prob) if d is not None]
    return (max(parts) if parts else None), d_match, d_prob
