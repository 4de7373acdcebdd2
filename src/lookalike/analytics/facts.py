"""Where the analytics read their rows from: the hourly rollups, and the log at the edges.

A query over a range asks for *facts*: a SQL subquery with one row per (UTC hour, model
version, outcome[, class]) and summable columns (``n``, ``several_faces``, ``sum_probability``,
``sum_match_score``, histograms ``p0..p9`` / ``m0..m19`` / ``l0..l59``, ``likes``,
``dislikes``). The whole UTC hours inside the range come from the rollups (a few thousand rows
for months of traffic); the partial hours at the edges (a datetime filter, a zone whose
midnight is not on the hour) come from ``predictions`` itself, one fact per row, with the same
columns computed the same way; both meet in a ``UNION ALL``. Every endpoint then groups facts
by its buckets.

The rollups are kept by triggers (migration 0003): each inserted, updated or deleted log row
moves them in the writer's transaction, so facts always match the log.

``Source``: ``hours`` (per version and outcome: every histogram), ``labels`` (also per class:
counts, feedback; per UTC day also the latency histogram, used when the answer has no local
time buckets) or ``log`` (the log only: a class filter on histograms, or a zone whose offsets
are not whole hours when buckets are local). Whole UTC days come from the daily rollup, whole
hours left over from the hourly one, the rest from the log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, TextClause, bindparam, select, text

from lookalike.analytics.filters import Filters
from lookalike.analytics.timebuckets import DAY, HOUR, epoch_seconds, utc_from_seconds
from lookalike.db.models import (
    LATENCY_EDGES_MS,
    MATCH_SCORE_EDGES,
    PROBABILITY_EDGES,
    PredictionRecord,
    UTCDateTime,
)

Source = Literal["hours", "labels", "log"]

P_BINS = [f"p{i}" for i in range(len(PROBABILITY_EDGES) + 1)]
M_BINS = [f"m{i}" for i in range(len(MATCH_SCORE_EDGES) + 1)]
L_BINS = [f"l{i}" for i in range(len(LATENCY_EDGES_MS) + 1)]
HOURS_COLUMNS = ["n", "several_faces", "sum_probability", "sum_match_score"] + (
    P_BINS + M_BINS + L_BINS
)
LABELS_COLUMNS = ["n", "likes", "dislikes"]
WITH_FACE = "outcome <> 'no_face'"


@dataclass
class Sql:
    """SQL text being built, with its bound parameters (``:p0``, ``:p1``, ...)."""

    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def text(self, sql: str, extra: dict[str, Any] | None = None) -> TextClause:
        params = {**self.params, **(extra or {})}
        binds = [
            bindparam(k, v, type_=UTCDateTime()) if isinstance(v, datetime) else bindparam(k, v)
            for k, v in params.items()
            if re.search(rf":{k}\b", sql)
        ]
        return text(sql).bindparams(*binds)


def bin_condition(column: str, edges: tuple[float, ...], i: int) -> str:
    """SQL: ``column`` falls in bin ``i`` of ``edges`` (NULL in none)."""
    parts = [f"{column} IS NOT NULL"]
    if i > 0:
        parts.append(f"{column} >= {edges[i - 1]!r}")
    if i < len(edges):
        parts.append(f"{column} < {edges[i]!r}")
    return " AND ".join(parts)


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def log_columns() -> dict[str, str]:
    """Each fact column for one ``predictions`` row, exactly as the triggers compute it."""
    columns = {
        "n": "1",
        "several_faces": _flag("faces_found > 1"),
        "sum_probability": "COALESCE(probability, 0)",
        "sum_match_score": "COALESCE(match_score, 0)",
        "likes": _flag("feedback = 'like'"),
        "dislikes": _flag("feedback = 'dislike'"),
    }
    for i, name in enumerate(P_BINS):
        columns[name] = _flag(bin_condition("probability", PROBABILITY_EDGES, i))
    for i, name in enumerate(M_BINS):
        columns[name] = _flag(bin_condition("match_score", MATCH_SCORE_EDGES, i))
    for i, name in enumerate(L_BINS):
        columns[name] = _flag(f"latency_bin = {i}")
    return columns


def _bin_index(column: str, edges: tuple[float, ...]) -> str:
    """SQL: the bin of ``column`` among ``edges`` (NULL stays NULL), as ``bin_condition``."""
    branches = " ".join(f"WHEN {column} < {edge!r} THEN {i}" for i, edge in enumerate(edges))
    return f"CASE WHEN {column} IS NULL THEN NULL {branches} ELSE {len(edges)} END"


# Histogram columns of the log's facts: (bin column name in the grouped rows, bin of a row).
_HISTOGRAMS = (
    ("pb", P_BINS, _bin_index("probability", PROBABILITY_EDGES)),
    ("mb", M_BINS, _bin_index("match_score", MATCH_SCORE_EDGES)),
    ("lb", L_BINS, "latency_bin"),
)


def _log_part(ts: str, keyed: bool, columns: list[str], where: str) -> str:
    """The log's facts for some rows, grouped: one fact per (``ts``, version, outcome[,
    class], histogram bins) with the row count, so that a histogram's ``k``-th column is the
    count of the group when its bin is ``k`` (a row's bin computed once, not one flag per
    column), and the sums summed."""
    row = log_columns()
    keys = [f"{ts} AS ts", "model_version", "outcome", *(["label"] if keyed else [])]
    sums, bins, outer = ["count(*) AS c"], [], ["ts", "model_version", "outcome"]
    outer += ["label"] if keyed else []
    wanted = set(columns)
    for name, family, expression in _HISTOGRAMS:
        if wanted & set(family):
            bins.append(f"{expression} AS {name}")
    for column in columns:
        histogram = next((h for h in _HISTOGRAMS if column in h[1]), None)
        if histogram is not None:
            name, family, _ = histogram
            outer.append(f"CASE WHEN {name} = {family.index(column)} THEN c ELSE 0 END AS {column}")
        elif column == "n":
            outer.append("c AS n")
        else:
            sums.append(f"SUM({row[column]}) AS {column}")
            outer.append(column)
    grouped = [*keys, *bins]
    return (
        f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(grouped + sums)} FROM predictions"
        f" WHERE {where} GROUP BY {', '.join(str(i + 1) for i in range(len(grouped)))}) AS g"
    )


def log_ts(dialect: str) -> str:
    """Whole epoch seconds of ``created_at`` (SQL)."""
    if dialect == "postgresql":
        return "CAST(floor(extract(epoch FROM created_at)) AS BIGINT)"
    return "CAST(strftime('%s', created_at) AS INTEGER)"


def log_filters(sql: Sql, filters: Filters, *, with_face: bool = False) -> list[str]:
    """WHERE terms on ``predictions`` for the version / class filters."""
    terms = []
    if filters.model_version is not None:
        terms.append(f"model_version = {sql.bind(filters.model_version)}")
    if filters.no_match:
        terms.append("label IS NULL AND outcome = 'no_strong_match'")
    elif filters.label is not None:
        terms.append(f"label = {sql.bind(filters.label)} AND outcome = 'match'")
    elif with_face:
        terms.append(WITH_FACE)
    return terms


def time_range(sql: Sql, start: datetime, end: datetime) -> str:
    return f"created_at >= {sql.bind(start)} AND created_at < {sql.bind(end)}"


@dataclass(frozen=True)
class Rollup:
    """A rollup table: its time key (``hour`` or ``day`` since the epoch, UTC) and columns."""

    table: str
    key: str
    seconds: int
    keyed: bool  # has a label column
    columns: frozenset[str]


HOURS = Rollup("prediction_hours", "hour", HOUR, False, frozenset(HOURS_COLUMNS))
HOUR_LABELS = Rollup("prediction_hour_labels", "hour", HOUR, True, frozenset(LABELS_COLUMNS))
DAY_LABELS = Rollup(
    "prediction_day_labels", "day", DAY, True, frozenset([*LABELS_COLUMNS, *L_BINS])
)


def rollups(source: Source, columns: list[str], *, bucketed: bool) -> list[Rollup]:
    """The rollups that can serve ``columns``, coarsest first. Local buckets need hours: a
    UTC day is not a local day."""
    if source == "hours":
        candidates = [HOURS]
    elif source == "labels":
        candidates = [HOUR_LABELS] if bucketed else [DAY_LABELS, HOUR_LABELS]
    else:
        candidates = []
    return [r for r in candidates if set(columns) <= r.columns]


Span = tuple[datetime, datetime]


def split(
    start: datetime, end: datetime, seconds: int
) -> tuple[tuple[int, int] | None, list[Span]]:
    """The whole units of ``seconds`` inside [start, end) (as unit numbers [first, last)) and
    the parts of the range outside them."""
    s, e = epoch_seconds(start), epoch_seconds(end)
    first = -(-s // seconds) if utc_from_seconds(s) == start else s // seconds + 1
    last = e // seconds
    if first >= last:
        return None, [(start, end)]
    lo, hi = utc_from_seconds(first * seconds), utc_from_seconds(last * seconds)
    return (first, last), [(a, b) for a, b in ((start, lo), (hi, end)) if a < b]


def _rollup_part(
    sql: Sql, filters: Filters, rollup: Rollup, units: tuple[int, int], columns: list[str]
) -> str:
    terms = [
        f"{rollup.key} >= {sql.bind(units[0])}",
        f"{rollup.key} < {sql.bind(units[1])}",
    ]
    if filters.model_version is not None:
        terms.append(f"model_version = {sql.bind(filters.model_version)}")
    if filters.no_match:
        terms.append("label = '' AND outcome = 'no_strong_match'")
    elif filters.label is not None:
        terms.append(f"label = {sql.bind(filters.label)} AND outcome = 'match'")
    label = ", NULLIF(label, '') AS label" if rollup.keyed else ""
    return (
        f"SELECT {rollup.key} * {rollup.seconds} AS ts, model_version, outcome{label},"
        f" {', '.join(columns)} FROM {rollup.table} WHERE {' AND '.join(terms)}"
    )


def facts(
    sql: Sql,
    dialect: str,
    filters: Filters,
    source: Source,
    columns: list[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    bucketed: bool = False,
    hourly: bool = False,
) -> str:
    """A subquery yielding ``ts, model_version, outcome[, label], <columns>`` for the range
    (default: the filters'), filtered by version and class: whole days / hours from the
    rollups, what is left from the log, grouped (``_log_part``). Unbucketed facts are only
    summed: the log's carry the start of their piece as ``ts``; ``hourly`` (the zone's
    offsets are whole hours, changed on the hour) floors the log's ``ts`` to the UTC hour,
    which lies in one local hour; otherwise ``ts`` is the row's second."""
    keyed = source in ("labels", "log")
    pieces: list[Span] = [(start or filters.start_utc, end or filters.end_utc)]
    parts = []
    for rollup in rollups(source, columns, bucketed=bucketed):
        rest: list[Span] = []
        for a, b in pieces:
            units, outside = split(a, b, rollup.seconds)
            if units is not None:
                parts.append(_rollup_part(sql, filters, rollup, units, columns))
            rest.extend(outside)
        pieces = rest
    for a, b in pieces:
        terms = [time_range(sql, a, b), *log_filters(sql, filters)]
        if not bucketed:
            ts = str(epoch_seconds(a))
        elif hourly:
            ts = f"({log_ts(dialect)} / {HOUR} * {HOUR})"
        else:
            ts = log_ts(dialect)
        parts.append(_log_part(ts, keyed, columns, " AND ".join(terms)))
    return " UNION ALL ".join(parts)


def data_range(conn: Connection, filters: Filters) -> tuple[datetime, datetime] | None:
    """The filters' range narrowed to whole hours around the log rows in it (None: no rows),
    so that an "all time" query works out time zone offsets only where there is data."""
    created = PredictionRecord.created_at
    within = select(created).where(created >= filters.start_utc, created < filters.end_utc)
    # Two index probes (a min() and a max() in one query would read the whole range).
    lo = conn.execute(within.order_by(created).limit(1)).scalar()
    hi = conn.execute(within.order_by(created.desc()).limit(1)).scalar()
    if lo is None or hi is None:
        return None
    first = utc_from_seconds(epoch_seconds(lo) // HOUR * HOUR)
    last = utc_from_seconds((epoch_seconds(hi) // HOUR + 1) * HOUR)
    return max(filters.start_utc, first), min(filters.end_utc, last)
