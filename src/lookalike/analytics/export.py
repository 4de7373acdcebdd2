"""The prediction log for the dashboard's filters, streamed as CSV or JSON.

Rows come oldest first, ``yield_per`` rows at a time from a streaming cursor (a server-side
cursor on PostgreSQL), so memory stays flat whatever the size. Only the answer is exported:
never the object-store key of a kept photo nor the deletion token's hash. Requests without a
face are included unless a class is filtered on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, select

from lookalike.analytics.filters import NO_MATCH, Filters
from lookalike.analytics.queries import snapshot
from lookalike.db.models import PredictionRecord

COLUMNS = (
    "id",
    "created_at",
    "model_version",
    "label",
    "best_label",
    "probability",
    "match_score",
    "no_strong_match",
    "faces_found",
    "frames_used",
    "latency_ms",
    "client",
    "feedback",
    "feedback_label",
)
CHUNK = 1000


def statement(filters: Filters, limit: int) -> Select[Any]:
    query = select(*(getattr(PredictionRecord, c) for c in COLUMNS)).where(
        PredictionRecord.created_at >= filters.start_utc,
        PredictionRecord.created_at < filters.end_utc,
    )
    if filters.model_version is not None:
        query = query.where(PredictionRecord.model_version == filters.model_version)
    if filters.no_match:
        query = query.where(
            PredictionRecord.label.is_(None), PredictionRecord.outcome == "no_strong_match"
        )
    elif filters.label is not None:
        query = query.where(
            PredictionRecord.label == filters.label, PredictionRecord.outcome == "match"
        )
    return query.order_by(PredictionRecord.created_at, PredictionRecord.id).limit(limit)


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def rows(engine: Engine, filters: Filters, limit: int) -> Iterator[list[dict[str, Any]]]:
    """The selected rows as dicts, in chunks."""
    with snapshot(engine) as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(
            statement(filters, limit)
        )
        for chunk in result.partitions():
            yield [{c: _value(v) for c, v in zip(COLUMNS, row, strict=True)} for row in chunk]


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def csv_stream(engine: Engine, filters: Filters, limit: int) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    for chunk in rows(engine, filters, limit):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_csv_value(r[c]) for c in COLUMNS] for r in chunk)
        yield buffer.getvalue()


def json_stream(engine: Engine, filters: Filters, limit: int, count: int) -> Iterator[str]:
    head = {"filters": filters.echo(), "timezone": filters.tz.key, "count": count}
    yield json.dumps(head)[:-1] + ', "data": ['
    first = True
    for chunk in rows(engine, filters, limit):
        text = ",".join(json.dumps(r, separators=(",", ":")) for r in chunk)
        if text:
            yield ("" if first else ",") + text
            first = False
    yield "]}"


def filename(filters: Filters, extension: str) -> str:
    """``predictions_<start>_<end>[_<version>][_<class>].<ext>`` with safe characters only."""
    parts = ["predictions", filters.start.date().isoformat(), filters.end.date().isoformat()]
    if filters.model_version:
        parts.append(filters.model_version)
    if filters.no_match or filters.label:
        parts.append(NO_MATCH.strip("_") if filters.no_match else str(filters.label))
    name = "_".join(parts)
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in name)
    return f"{safe[:150]}.{extension}"
