"""Latency percentiles, nearest-rank, in the database.

Definition: the p-th percentile of n latencies is the k-th smallest with ``k = ceil(p * n)``
(at least 1), an actual logged value, never an interpolation: PostgreSQL's
``percentile_disc(p)``. Rows without a face are left out; values are milliseconds as logged.

* Sorting a month of rows is too slow (about a second for 300k rows on SQLite; at 10M rows a
  month on PostgreSQL's ``percentile_disc`` took seconds too), so the k-th value is found in
  two steps, both in SQL, the same on both databases:

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

SQLite is told the index (``INDEXED BY``); PostgreSQL picks its own, except that a group
found by its time range (a day's bin, a class's day) is fenced (``OFFSET 0``) so that it is
read through that range and sorted, not by walking every row in latency order until the
range's rows turn up (50-70 ms a lookup at 1M rows); and a walk of
``ix_predictions_label_latency`` orders by the index's leading columns too, since PostgreSQL
does not take ``label IS NULL`` ("no strong match") as fixing ``label`` and would sort the
bin instead. Every lookup of a request is a scalar
subquery of one statement (``Batch``): a day and a percentile each, 180 for 90 days.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

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
# Indexes that find a group by its time range, not in latency order: its rows are sorted.
SORTED = (BY_BIN, BY_LABEL_TIME)


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


# Settled ranges: rows are logged at the time they are answered, so a range that ended this
# long ago can only lose rows (deletions), and losing one changes its histogram, hence the
# lookups' counts and ranks: their answers can be kept, keyed by those (``Batch``).
SETTLED = timedelta(minutes=10)
CACHE_SIZE = 50_000  # answers kept per engine (a day, a filter, a percentile each)
_CACHE: weakref.WeakKeyDictionary[Engine, OrderedDict[Hashable, float | None]] = (
    weakref.WeakKeyDictionary()
)
_CACHE_LOCK = threading.Lock()


def settled(spans: Sequence[tuple[datetime, datetime]]) -> bool:
    """Whether every span ended ``SETTLED`` ago (their lookups' answers may be kept)."""
    limit = datetime.now(UTC) - SETTLED
    return all(b <= limit for _, b in spans)


def lookup_key(
    kind: str, filters: Filters, label: str | None, spans: Sequence[tuple[datetime, datetime]]
) -> Hashable:
    """What a lookup's rows are, but for the bin, count and rank (``Batch.kth`` adds them)."""
    edges = tuple((a.timestamp(), b.timestamp()) for a, b in spans)
    return (kind, filters.model_version, filters.by_label, filters.no_match, label, edges)


class Batch:
    """k-th smallest latencies looked up together: each lookup is a scalar subquery, and
    they are all answered by one statement (a round trip per day and percentile cost more
    than the lookups themselves). Answers over settled ranges are kept per engine: a past
    day is read once, not at each request."""

    CHUNK = 500  # subqueries per statement

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sql = Sql()
        self._queries: list[tuple[int, str, int, str, Hashable | None]] = []
        self._values: list[float | None] = []
        with _CACHE_LOCK:
            self._cache = _CACHE.setdefault(conn.engine, OrderedDict())

    def kth(
        self, index: str, terms: list[str], count: int, k: int, key: Hashable | None = None
    ) -> int:
        """Ask for the k-th smallest latency among the ``count`` rows matching ``terms``
        (bound in ``self.sql``), read through ``index`` from whichever end is nearer; its
        slot in ``values``. ``key`` (``lookup_key``, settled ranges only): the answer may be
        kept and reused."""
        slot = len(self._values)
        if key is not None:
            key = (key, index, count, k)
            with _CACHE_LOCK:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    self._values.append(self._cache[key])
                    return slot
        descending = k - 1 > count - k
        offset = count - k if descending else k - 1
        order = "DESC" if descending else "ASC"
        where = " AND ".join(terms)
        rows = f"FROM predictions INDEXED BY {index} WHERE {where}"
        if self.conn.dialect.name == "postgresql":
            rows = f"FROM predictions WHERE {where}"
            if index in SORTED:  # read the group through its range, then sort it (OFFSET 0)
                rows = f"FROM (SELECT latency_ms {rows} OFFSET 0) AS grouped"
        ordered = f"latency_ms {order}"
        if index == BY_LABEL:  # ``label IS NULL`` is no equality to PostgreSQL: name the order
            ordered = f"label {order}, outcome {order}, {ordered}"
        query = f"SELECT latency_ms {rows} ORDER BY {ordered} LIMIT 1 OFFSET {offset}"
        self._queries.append((slot, query, offset, index, key))
        self._values.append(None)
        return slot

    def run(self) -> None:
        """Answer every lookup asked since the last run."""
        queries, self._queries = self._queries, []
        for first in range(0, len(queries), self.CHUNK):
            chunk = queries[first : first + self.CHUNK]
            select = ", ".join(f"({q[1]}) AS v{i}" for i, q in enumerate(chunk))
            row: tuple[Any, ...] = tuple(self.conn.execute(self.sql.text(f"SELECT {select}")).one())
            for value, (slot, _, offset, index, key) in zip(row, chunk, strict=True):
                if value is None:  # the rollup and the log disagree: should never happen
                    log.error("latency percentile: no row at offset %d (%s)", offset, index)
                    continue
                self._values[slot] = float(value)
                if key is not None:
                    with _CACHE_LOCK:
                        self._cache[key] = float(value)
                        while len(self._cache) > CACHE_SIZE:
                            self._cache.popitem(last=False)

    def values(self, slots: Sequence[int | None]) -> list[float | None]:
        """The answers of ``slots`` (None: nothing was asked, no rows)."""
        return [None if slot is None else self._values[slot] for slot in slots]


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
    batch: Batch, filters: Filters, group: Group, *, per_day: bool
) -> list[int | None]:
    """The percentiles of a group whose histogram is known: their slots in ``batch``."""
    n = group.count
    if n == 0:
        return [None for _ in PERCENTILES]
    key = lookup_key("group", filters, None, group.spans) if settled(group.spans) else None
    out: list[int | None] = []
    for p in PERCENTILES:
        b, r = locate(group.histogram, nearest_rank(p, n))
        sql = batch.sql
        terms = [_spans(sql, group.spans), *log_filters(sql, filters, with_face=True)]
        if per_day:
            index, terms = BY_BIN, [f"latency_bin = {b}", *terms]
        else:
            index = BY_LABEL if filters.by_label else BY_LATENCY
            terms = [*terms, *latency_range(b)]
        out.append(
            batch.kth(index, terms, group.histogram[b], r, None if key is None else (key, b))
        )
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
    batch: Batch,
    filters: Filters,
    label: str | None,
    spans: list[tuple[datetime, datetime]],
    *,
    count: int = 0,
    histogram: Sequence[int] | None = None,
    small: bool = False,
) -> list[int | None]:
    """The percentiles of one class's rows (label None: "no strong match") within ``spans``:
    their slots in ``batch``. With its ``histogram`` (from the daily per-class rollup) only
    the right bin is walked in latency order; with only a ``count``, the class's rows are
    walked from the nearer end, or (``small``: one day of one class) read in time order and
    sorted."""
    total = sum(histogram) if histogram is not None else count
    if total == 0:
        return [None for _ in PERCENTILES]
    key = lookup_key("class", filters, label, spans) if settled(spans) else None
    out: list[int | None] = []
    for p in PERCENTILES:
        terms = _class_terms(batch.sql, filters, label, spans)
        k = nearest_rank(p, total)
        if histogram is not None:
            b, r = locate(histogram, k)
            terms = [*terms, *latency_range(b)]
            out.append(
                batch.kth(BY_LABEL, terms, histogram[b], r, None if key is None else (key, b))
            )
        else:
            index = BY_LABEL_TIME if small else BY_LABEL
            out.append(batch.kth(index, terms, total, k, key))
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
