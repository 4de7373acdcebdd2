"""One function per dashboard endpoint; each answers a JSON-ready dict.

Every aggregation is a ``GROUP BY`` in the database over *facts* (``lookalike.analytics.facts``):
the hourly rollups for whole hours, the log for partial ones. Python only reshapes the grouped
rows (at most a few thousand) into the answer.

What is counted: a logged request is a *prediction* when a face was found (outcome ``match``
or ``no_strong_match``); requests where no face was found (outcome ``no_face``) only appear in
:func:`confidence` (``no_face_share``) and in exports. ``label`` is the answered class, None
for "no strong match".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from lookalike.analytics import drift as drift_score
from lookalike.analytics import percentiles as pct
from lookalike.analytics.facts import (
    L_BINS,
    M_BINS,
    P_BINS,
    WITH_FACE,
    Source,
    Sql,
    data_range,
    facts,
    log_filters,
    time_range,
)
from lookalike.analytics.filters import Filters
from lookalike.analytics.timebuckets import Bucket, Clock, day_string
from lookalike.db.models import (
    MATCH_SCORE_EDGES,
    PROBABILITY_EDGES,
    ModelAlias,
    ModelEvent,
    ModelVersion,
)
from lookalike.kinds import CHAMPION_CHANGES, Alias, ModelKind

LOOKALIKE = ModelKind.FACES
CHAMPION = Alias.CHAMPION
MAX_HOURLY_DAYS = 31  # hourly buckets over at most a month (744 buckets)
DECIMALS = 6


def _share(part: int, total: int) -> float | None:
    return round(part / total, DECIMALS) if total else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _label_order(label: str | None) -> tuple[bool, str]:
    return (label is None, label or "")


@dataclass
class Query:
    """One request's connection, filters and clock, over the part of the range with data."""

    conn: Connection
    filters: Filters
    start: datetime  # UTC; the filters' range narrowed to the hours holding rows
    end: datetime
    empty: bool
    clock: Clock

    @classmethod
    def open(cls, conn: Connection, filters: Filters) -> Query:
        span = data_range(conn, filters)
        if span is None:
            end = filters.end_utc
            start = max(filters.start_utc, end - timedelta(days=1))
            return cls(
                conn, filters, start, end, True, Clock(conn.dialect.name, filters.tz, start, end)
            )
        start, end = span
        return cls(
            conn, filters, start, end, False, Clock(conn.dialect.name, filters.tz, start, end)
        )

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    def head(self) -> dict[str, Any]:
        return {"filters": self.filters.echo(), "timezone": self.filters.tz.key}

    def source(self, table: Source, *, bucketed: bool) -> Source:
        """The rollup ``table`` when it can answer, else the log."""
        if bucketed and not self.clock.hour_aligned:
            return "log"
        if table == "hours" and self.filters.by_label:
            return "log"
        return table

    def facts(self, sql: Sql, table: Source, columns: list[str], *, bucketed: bool) -> str:
        source = self.source(table, bucketed=bucketed)
        return facts(
            sql,
            self.dialect,
            self.filters,
            source,
            columns,
            start=self.start,
            end=self.end,
            bucketed=bucketed,
            hourly=self.clock.hour_aligned,
        )

    def rows(self, sql: Sql, query: str) -> list[Any]:
        """The grouped rows as plain tuples (no result processing: ints, floats, text)."""
        if self.empty:
            return []
        result = self.conn.execute(sql.text(query, self.clock.params()))
        try:
            return list(result.cursor.fetchall()) if result.cursor is not None else []
        finally:
            result.close()


def _sums(columns: list[str]) -> str:
    return ", ".join(f"SUM({c})" for c in columns)


# --- classes -------------------------------------------------------------------------------


def classes(q: Query) -> dict[str, Any]:
    """Predicted class distribution, overall and per model version."""
    sql = Sql()
    f = q.facts(sql, "labels", ["n"], bucketed=False)
    rows = q.rows(
        sql,
        f"SELECT model_version, label, SUM(n) FROM ({f}) AS f WHERE {WITH_FACE}"
        " GROUP BY model_version, label",
    )
    by_model = sorted(
        ({"model_version": v, "label": label, "count": int(n)} for v, label, n in rows if n),
        key=lambda r: (r["model_version"], -r["count"], *_label_order(r["label"])),
    )
    totals: dict[str | None, int] = {}
    for r in by_model:
        totals[r["label"]] = totals.get(r["label"], 0) + r["count"]
    total = sum(totals.values())
    data = [
        {"label": label, "count": n, "share": _share(n, total)}
        for label, n in sorted(totals.items(), key=lambda t: (-t[1], *_label_order(t[0])))
    ]
    return {**q.head(), "total": total, "data": data, "by_model": by_model}


# --- accuracy ------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def accuracy(q: Query) -> dict[str, Any]:
    """Every model version's test accuracy and macro-F1 over time; promotions and rollbacks."""
    f, conn, tz = q.filters, q.conn, q.filters.tz
    champion = conn.execute(
        select(ModelAlias.version).where(ModelAlias.kind == LOOKALIKE, ModelAlias.alias == CHAMPION)
    ).scalar()
    served = set(
        conn.execute(
            select(ModelEvent.version).where(
                ModelEvent.model_kind == LOOKALIKE, ModelEvent.kind.in_(CHAMPION_CHANGES)
            )
        ).scalars()
    )
    versions = select(
        ModelVersion.version, ModelVersion.created_at, ModelVersion.metrics, ModelVersion.decision
    ).where(
        ModelVersion.kind == LOOKALIKE,
        ModelVersion.created_at >= f.start_utc,
        ModelVersion.created_at < f.end_utc,
    )
    events = select(
        ModelEvent.at,
        ModelEvent.kind,
        ModelEvent.version,
        ModelEvent.previous,
        ModelEvent.reason,
        ModelEvent.actor,
    ).where(
        ModelEvent.model_kind == LOOKALIKE,
        ModelEvent.kind.in_(CHAMPION_CHANGES),
        ModelEvent.at >= f.start_utc,
        ModelEvent.at < f.end_utc,
    )
    if f.model_version is not None:
        versions = versions.where(ModelVersion.version == f.model_version)
        events = events.where(
            (ModelEvent.version == f.model_version) | (ModelEvent.previous == f.model_version)
        )
    data = []
    for row in conn.execute(versions.order_by(ModelVersion.created_at, ModelVersion.version)):
        metrics = row.metrics or {}
        data.append(
            {
                "version": row.version,
                "created_at": row.created_at.astimezone(tz).isoformat(),
                "accuracy": _number(metrics.get("accuracy")),
                "macro_f1": _number(metrics.get("macro_f1")),
                "decision": row.decision,
                "champion": row.version == champion,
                "was_champion": row.version in served or row.version == champion,
            }
        )
    history = [
        {
            "at": e.at.astimezone(tz).isoformat(),
            "kind": e.kind,
            "version": e.version,
            "previous": e.previous,
            "reason": e.reason,
            "actor": e.actor,
        }
        for e in conn.execute(events.order_by(ModelEvent.at, ModelEvent.id))
    ]
    return {**q.head(), "champion": champion, "data": data, "events": history}


# --- predictions over time -----------------------------------------------------------------


def hourly_allowed(q: Query) -> bool:
    """Hourly buckets are for ranges of at most ``MAX_HOURLY_DAYS`` (as asked, not as filled)."""
    return q.filters.end - q.filters.start <= timedelta(days=MAX_HOURLY_DAYS)


def volume(q: Query, bucket: Bucket) -> dict[str, Any]:
    """Predictions per local hour / day / week (Monday) / month, per class."""
    sql, clock = Sql(), q.clock
    f = q.facts(sql, "labels", ["n"], bucketed=True)
    where = f"FROM ({f}) AS f WHERE {WITH_FACE}"
    if bucket == "hour":  # the repeated hour of a DST change: two buckets, by offset
        grouped = (
            f"SELECT {clock.start_of('hour', 'ts')} AS lsec, {clock.offset('ts')} AS off,"
            f" label, SUM(n) AS n {where} GROUP BY 1, 2, 3"
        )
    elif bucket == "month":
        days = (
            f"SELECT {clock.start_of('day', 'ts')} AS d, label, SUM(n) AS n {where} GROUP BY 1, 2"
        )
        grouped = (
            f"SELECT {clock.month_of_day('d')} AS lsec, 0 AS off, label, SUM(n) AS n"
            f" FROM ({days}) AS days GROUP BY 1, 3"
        )
    else:
        grouped = (
            f"SELECT {clock.start_of(bucket, 'ts')} AS lsec, 0 AS off, label, SUM(n) AS n"
            f" {where} GROUP BY 1, 3"
        )
    query = (
        f"SELECT lsec, off, label, n FROM ({grouped}) AS b"
        " ORDER BY lsec - off, label IS NULL, label"
    )
    starts: dict[tuple[int, int | None], str] = {}
    data = []
    for lsec, off, label, n in q.rows(sql, query):
        if not n:
            continue
        key = (int(lsec), int(off) if bucket == "hour" else None)
        start = starts.get(key)
        if start is None:
            start = starts[key] = clock.bucket_start(*key).isoformat()
        data.append({"start": start, "label": label, "count": int(n)})
    return {**q.head(), "bucket": bucket, "data": data}


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def heatmap(q: Query) -> dict[str, Any]:
    """Predictions per local weekday x hour of the day."""
    sql, clock = Sql(), q.clock
    f = q.facts(sql, "labels" if q.filters.by_label else "hours", ["n"], bucketed=True)
    grid = [[0] * 24 for _ in WEEKDAYS]
    for weekday, hour, n in q.rows(
        sql,
        f"SELECT {clock.weekday('ts')}, {clock.hour_of_day('ts')}, SUM(n)"
        f" FROM ({f}) AS f WHERE {WITH_FACE} GROUP BY 1, 2",
    ):
        grid[int(weekday)][int(hour)] += int(n)
    return {**q.head(), "weekdays": WEEKDAYS, "hours": list(range(24)), "data": grid}


# --- answer time ---------------------------------------------------------------------------


def _latency_entry(count: int, values: list[float | None]) -> dict[str, Any]:
    return {"count": int(count), "p50": _ms(values[0]), "p95": _ms(values[1])}


def _class_histograms(q: Query) -> list[tuple[str | None, list[int]]]:
    """Each class's latency histogram over the range (daily per-class rollup + log)."""
    sql = Sql()
    facts_sql = q.facts(sql, "labels", L_BINS, bucketed=False)
    return [
        (label, [int(c or 0) for c in histogram])
        for label, *histogram in q.rows(
            sql,
            f"SELECT label, {_sums(L_BINS)} FROM ({facts_sql}) AS f WHERE {WITH_FACE}"
            " GROUP BY label",
        )
    ]


def _class_days(q: Query, batch: pct.Batch) -> list[tuple[str, int, list[int | None]]]:
    """One class per local day: counts from the hourly per-class rollup, values from the
    class's rows of that day (a few hundred at most, sorted): (day, count, slots)."""
    clock, f = q.clock, q.filters
    label = None if f.no_match else f.label
    sql = Sql()
    facts_sql = q.facts(sql, "labels", ["n"], bucketed=True)
    days = []
    for d, n in q.rows(
        sql,
        f"SELECT {clock.start_of('day', 'ts')} AS d, SUM(n) FROM ({facts_sql}) AS f"
        f" WHERE {WITH_FACE} GROUP BY 1",
    ):
        group = pct.day_group(clock.day_spans(int(d)), q.start, q.end, [int(n or 0)])
        if group.count:
            slots = pct.for_class(batch, f, label, group.spans, count=group.count, small=True)
            days.append((day_string(d), group.count, slots))
    return days


def _latency(q: Query, by: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The histograms from the rollups, then every percentile's row in one statement."""
    clock, f = q.clock, q.filters
    whole = [(q.start, q.end)]
    batch = pct.Batch(q.conn)
    groups: list[tuple[dict[str, Any], int, list[int | None]]] = []  # (keys, count, slots)
    if by == "class" or f.by_label:
        for label, histogram in _class_histograms(q):
            if sum(histogram):
                slots = pct.for_class(batch, f, label, whole, histogram=histogram)
                groups.append(({"label": label}, sum(histogram), slots))
    if f.by_label:  # one class: it is the whole
        overall_group = groups[0] if groups else ({}, 0, [None, None])
        if by == "day":
            groups = [({"day": d}, n, slots) for d, n, slots in _class_days(q, batch)]
    else:
        histogram = [0] * len(L_BINS)
        if by == "day":
            groups = []
            sql = Sql()
            facts_sql = q.facts(sql, "hours", L_BINS, bucketed=True)
            for d, *day_histogram in q.rows(
                sql,
                f"SELECT {clock.start_of('day', 'ts')} AS d, {_sums(L_BINS)}"
                f" FROM ({facts_sql}) AS f WHERE {WITH_FACE} GROUP BY 1",
            ):
                counts = [int(c or 0) for c in day_histogram]
                histogram = [a + b for a, b in zip(histogram, counts, strict=True)]
                group = pct.day_group(clock.day_spans(int(d)), q.start, q.end, counts)
                if group.count:
                    slots = pct.from_histogram(batch, f, group, per_day=True)
                    groups.append(({"day": day_string(d)}, group.count, slots))
        else:
            sql = Sql()
            facts_sql = q.facts(sql, "hours", L_BINS, bucketed=False)
            rows = q.rows(sql, f"SELECT {_sums(L_BINS)} FROM ({facts_sql}) AS f WHERE {WITH_FACE}")
            if rows:
                histogram = [int(c or 0) for c in rows[0]]
        group = pct.Group(whole, histogram)
        overall_group = ({}, group.count, pct.from_histogram(batch, f, group, per_day=False))
    batch.run()
    overall = _latency_entry(overall_group[1], batch.values(overall_group[2]))
    data = [{**keys, **_latency_entry(n, batch.values(slots))} for keys, n, slots in groups]
    return overall, data


def latency(q: Query, by: str) -> dict[str, Any]:
    """p50 / p95 answer time (ms, nearest rank) overall and per local day or per class."""
    overall, data = _latency(q, by)
    if by == "day":
        data.sort(key=lambda r: r["day"])
    else:
        data.sort(key=lambda r: (-r["count"], *_label_order(r["label"])))
    return {**q.head(), "by": by, "overall": overall, "data": data}


# --- confidence ----------------------------------------------------------------------------


def confidence(q: Query) -> dict[str, Any]:
    """Best-class probability histogram; shares of "no strong match", no face, several faces."""
    sql = Sql()
    columns = ["n", "several_faces", *P_BINS]
    f = q.facts(sql, "hours", columns, bucketed=False)
    by_outcome: dict[str, int] = {}
    several = 0
    histogram = [0] * len(P_BINS)
    for outcome, n, several_faces, *bins in q.rows(
        sql, f"SELECT outcome, {_sums(columns)} FROM ({f}) AS f GROUP BY outcome"
    ):
        by_outcome[outcome] = int(n or 0)
        several += int(several_faces or 0)
        histogram = [a + int(b or 0) for a, b in zip(histogram, bins, strict=True)]
    total = sum(by_outcome.values())
    edges = [0.0, *PROBABILITY_EDGES, 1.0]
    return {
        **q.head(),
        "total": total,
        "histogram": [
            {"from": edges[i], "to": edges[i + 1], "count": histogram[i]}
            for i in range(len(histogram))
        ],
        "no_strong_match_share": _share(by_outcome.get("no_strong_match", 0), total),
        "no_face_share": _share(by_outcome.get("no_face", 0), total),
        "several_faces_share": _share(several, total),
    }


# --- feedback ------------------------------------------------------------------------------


def feedback(q: Query) -> dict[str, Any]:
    """Likes / dislikes per answered class; "I look more like ..." against the best class."""
    sql = Sql()
    f = q.facts(sql, "labels", ["likes", "dislikes"], bucketed=False)
    data = [
        {"label": label, "likes": int(likes), "dislikes": int(dislikes)}
        for label, likes, dislikes in q.rows(
            sql,
            f"SELECT label, SUM(likes), SUM(dislikes) FROM ({f}) AS f WHERE {WITH_FACE}"
            " GROUP BY label HAVING SUM(likes) + SUM(dislikes) > 0",
        )
    ]
    data.sort(key=lambda r: _label_order(r["label"]))
    sql = Sql()
    terms = [
        "feedback_label IS NOT NULL",
        time_range(sql, q.start, q.end),
        *log_filters(sql, q.filters, with_face=True),
    ]
    index = "" if q.clock.postgres else " INDEXED BY ix_predictions_feedback"
    confusion = [
        {"predicted": predicted, "said": said, "count": int(n)}
        for predicted, said, n in q.rows(
            sql,
            f"SELECT best_label, feedback_label, count(*) FROM predictions{index}"
            f" WHERE {' AND '.join(terms)} GROUP BY best_label, feedback_label",
        )
    ]
    confusion.sort(key=lambda r: (-r["count"], r["predicted"] or "", r["said"]))
    return {**q.head(), "data": data, "confusion": confusion}


# --- drift ---------------------------------------------------------------------------------


def reference_of(q: Query) -> tuple[str | None, dict[str, Any] | None]:
    """The model whose reference drift is measured against (the filtered one, else the
    champion) and its reference."""
    version = (
        q.filters.model_version
        or q.conn.execute(
            select(ModelAlias.version).where(
                ModelAlias.kind == LOOKALIKE, ModelAlias.alias == CHAMPION
            )
        ).scalar()
    )
    if version is None:
        return None, None
    metrics = q.conn.execute(
        select(ModelVersion.metrics).where(ModelVersion.version == version)
    ).scalar()
    reference = (metrics or {}).get("reference") if isinstance(metrics, dict) else None
    return version, drift_score.usable(reference)


def drift(q: Query, threshold: float) -> dict[str, Any]:
    """Per local day: mean confidences and the distance of their distribution from the
    model's held-out reference (see ``lookalike.analytics.drift``)."""
    version, reference = reference_of(q)
    sql, clock = Sql(), q.clock
    columns = ["n", "sum_probability", "sum_match_score", *P_BINS, *M_BINS]
    f = q.facts(sql, "hours", columns, bucketed=True)
    data: list[dict[str, Any]] = []
    for d, n, sum_p, sum_m, *bins in q.rows(
        sql,
        f"SELECT {clock.start_of('day', 'ts')} AS d, {_sums(columns)}"
        f" FROM ({f}) AS f WHERE {WITH_FACE} GROUP BY 1",
    ):
        n = int(n or 0)
        if not n:
            continue
        counts = [int(b or 0) for b in bins]
        p_hist, m_hist = counts[: len(P_BINS)], counts[len(P_BINS) :]
        score, d_match, d_prob = drift_score.day_score(
            reference, p_hist, PROBABILITY_EDGES, m_hist, MATCH_SCORE_EDGES
        )
        data.append(
            {
                "day": day_string(d),
                "n": n,
                "mean_match_score": round(float(sum_m) / n, DECIMALS),
                "mean_probability": round(float(sum_p) / n, DECIMALS),
                "score": None if score is None else round(score, DECIMALS),
                "ks_match_score": None if d_match is None else round(d_match, DECIMALS),
                "ks_probability": None if d_prob is None else round(d_prob, DECIMALS),
                "over": score is not None and score > threshold,
            }
        )
    data.sort(key=lambda r: r["day"])
    return {
        **q.head(),
        "threshold": threshold,
        "reference_version": version,
        "reference": reference,
        "data": data,
    }


def export_count(q: Query) -> int:
    """How many log rows the filters select (no-face requests included)."""
    sql = Sql()
    f = facts(sql, q.dialect, q.filters, "labels", ["n"], start=q.start, end=q.end)
    rows = q.rows(sql, f"SELECT SUM(n) FROM ({f}) AS f")
    return int(rows[0][0] or 0) if rows else 0


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection whose queries all see the same state of the log (one request
    runs several queries: e.g. a histogram, then the rows of one of its bins)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            # Every query reads rollups or index ranges: starting parallel workers for one
            # costs more than it saves (hundreds of ms on a busy server).
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        elif conn.dialect.name == "sqlite":
            # pysqlite begins transactions only for writes: begin the read one here.
            conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()
