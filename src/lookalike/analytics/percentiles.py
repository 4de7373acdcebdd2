"""Latency percentiles, nearest-rank, in the database.

Definition: the p-th percentile of n latencies is the k-th smallest with ``k = ceil(p * n)``
(at least 1), an actual logged value, never an interpolation: PostgreSQL's
``percentile_disc(p)``. Rows without a face are left out; values are milliseconds as logged.

* PostgreSQL: ``percentile_disc(0.5), percentile_disc(0.95) WITHIN GROUP (ORDER BY
  latency_ms)``, grouped by local day or by class.
* SQLite has no percentile function and sorting a month of rows is too slow (about a second
  for 300k rows), so it finds the k-th value in two steps, both in SQL:

  1. the latency histogram (``l0..l59``, bins of ``LATENCY_EDGES_MS``) of the group, from the
     hourly rollup, gives the bin holding rank k and the rank r within that bin;
  2. an index walks that bin's rows of the group in latency order:
     ``ORDER BY latency_ms LIMIT 1 OFFSET r - 1`` (from the top when that is shorter) on
     ``ix_predictions_latency_bin`` (bin, created_at, ...) for a day,
     ``ix_predictions_latency`` (latency_ms, created_at, ...) for a whole range.

  Per class there is no histogram (the per-class rollup keeps counts only): the count comes
  from the rollup and ``ix_predictions_label_latency`` (label, outcome, latency_ms, ...) walks
  the class's rows in latency order. One class's day is small: its rows are read in time
  order from ``ix_predictions_label_created_at`` and sorted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from lookalike.analytics.facts import Sql, log_filters, time_range
from lookalike.analytics.filters import Filters
from lookalike.analytics.timebuckets import utc_from_seconds
from lookalike.db.models import LATENCY_EDGES_MS

log = logging.getLogger("lookalike.analytics")

PERCENTILES = (0.5, 0.95)
BY_BIN = "ix_predictions_latency_bin"
BY_LATENCY = "ix_predictions_latency"
BY_LABEL = "ix_predictions_label_latency"
BY_LABEL_TIME = "ix_predictions_label_created_at"


def nearest_rank(p: float, n: int) -> int:
    """The 1-based rank of the p-th percentile of n values (as ``percentile_disc``)."""
    return max(1, math.ceil(p * n))


def locate(histogram: Sequence[int], rank: int) -> tuple[int, int]:
    """(bin, rank within the bin) of the ``rank``-th smallest value."""
    seen = 0
    for i, count in enumerate(histogram):
        if seen + count >= rank:
            return i, rank - seen
        seen += count
    raise ValueError(f"rank {rank} beyond {seen} values")


def latency_range(i: int) -> list[str]:
    """SQL terms: ``latency_ms`` in bin ``i`` (what ``latency_bin = i`` means)."""
    terms = []
    if i > 0:
        terms.append(f"latency_ms >= {LATENCY_EDGES_MS[i - 1]!r}")
    if i < len(LATENCY_EDGES_MS):
        terms.append(f"latency_ms < {LATENCY_EDGES_MS[i]!r}")
    return terms


def kth(
    conn: Connection, sql: Sql, index: str, terms: list[str], count: int, k: int
) -> float | None:
    """The k-th smallest latency among the ``count`` rows matching ``terms``, read through
    ``index`` from whichever end is nearer."""
    descending = k - 1 > count - k
    offset = count - k if descending else k - 1
    order = "DESC" if descending else "ASC"
    query = (
        f"SELECT latency_ms FROM predictions INDEXED BY {index} WHERE {' AND '.join(terms)}"
        f" ORDER BY latency_ms {order} LIMIT 1 OFFSET {int(offset)}"
    )
    value = conn.execute(sql.text(query)).scalar()
    if value is None:  # the rollup and the log disagree: should never happen
        log.error("latency percentile: no row at offset %d of %d (%s)", offset, count, index)
        return None
    return float(value)


@dataclass(frozen=True)
class Group:
    """Rows whose percentiles are wanted: a time span (or several), and their histogram."""

    spans: list[tuple[datetime, datetime]]
    histogram: list[int]

    @property
    def count(self) -> int:
        return sum(self.histogram)


def _spans(sql: Sql, spans: list[tuple[datetime, datetime]]) -> str:
    parts = [time_range(sql, a, b) for a, b in spans]
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(f"({p})" for p in parts) + ")"


def from_histogram(
    conn: Connection, filters: Filters, group: Group, *, per_day: bool
) -> list[float | None]:
    """SQLite: the percentiles of a group whose histogram is known."""
    n = group.count
    if n == 0:
        return [None for _ in PERCENTILES]
    out: list[float | None] = []
    for p in PERCENTILES:
        b, r = locate(group.histogram, nearest_rank(p, n))
        sql = Sql()
        terms = [_spans(sql, group.spans), *log_filters(sql, filters, with_face=True)]
        if per_day:
            index, terms = BY_BIN, [f"latency_bin = {b}", *terms]
        else:
            index = BY_LABEL if filters.by_label else BY_LATENCY
            terms = [*terms, *latency_range(b)]
        out.append(kth(conn, sql, index, terms, group.histogram[b], r))
    return out


def _class_terms(
    sql: Sql, filters: Filters, label: str | None, spans: list[tuple[datetime, datetime]]
) -> list[str]:
    terms = [
        "label IS NULL AND outcome = 'no_strong_match'"
        if label is None
        else f"label = {sql.bind(label)} AND outcome = 'match'",
        _spans(sql, spans),
    ]
    if filters.model_version is not None:
        terms.append(f"model_version = {sql.bind(filters.model_version)}")
    return terms


def for_class(
    conn: Connection,
    filters: Filters,
    label: str | None,
    spans: list[tuple[datetime, datetime]],
    *,
    count: int = 0,
    histogram: Sequence[int] | None = None,
    small: bool = False,
) -> list[float | None]:
    """SQLite: the percentiles of one class's rows (label None: "no strong match") within
    ``spans``. With its ``histogram`` (from the daily per-class rollup) only the right bin is
    walked in latency order; with only a ``count``, the class's rows are walked from the
    nearer end, or (``small``: one day of one class) read in time order and sorted."""
    total = sum(histogram) if histogram is not None else count
    if total == 0:
        return [None for _ in PERCENTILES]
    out: list[float | None] = []
    for p in PERCENTILES:
        sql = Sql()
        terms = _class_terms(sql, filters, label, spans)
        k = nearest_rank(p, total)
        if histogram is not None:
            b, r = locate(histogram, k)
            out.append(kth(conn, sql, BY_LABEL, [*terms, *latency_range(b)], histogram[b], r))
        else:
            out.append(kth(conn, sql, BY_LABEL_TIME if small else BY_LABEL, terms, total, k))
    return out


def day_group(
    spans: list[tuple[int, int]], start: datetime, end: datetime, histogram: list[int]
) -> Group:
    """A local day's group: its instants (epoch-second spans) within [start, end)."""
    clipped = []
    for a, b in spans:
        lo, hi = max(utc_from_seconds(a), start), min(utc_from_seconds(b), end)
        if lo < hi:
            clipped.append((lo, hi))
    return Group(clipped or [(start, start)], histogram)


def pg_select(group_key: str | None) -> str:
    """PostgreSQL: count and the percentiles, optionally grouped (SQL select list)."""
    key = f"{group_key} AS key, " if group_key else ""
    percentiles = ", ".join(
        f"percentile_disc({p!r}) WITHIN GROUP (ORDER BY latency_ms)" for p in PERCENTILES
    )
    return f"SELECT {key}count(*) AS n, {percentiles}"
