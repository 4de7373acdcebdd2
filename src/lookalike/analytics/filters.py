"""The filters every analytics endpoint takes: ``start``, ``end``, ``model_version``, ``label``.

``start`` and ``end`` are an ISO date (``2026-03-01``: local midnight) or an ISO datetime
(``2026-03-01T08:30``: local wall time; with an offset or ``Z``: that instant), read in the
configured time zone; ``end`` is exclusive. Without them: the last 30 local days, today
included (``start`` alone: up to the end of today; ``end`` alone: the 30 days before it).
``label`` is a class name, or ``__none__`` for the "no strong match" answers.

Bad values are refused with the usual 422 ``request.invalid`` answer listing the fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.exceptions import RequestValidationError

NO_MATCH = "__none__"
DEFAULT_DAYS = 30
MAX_TEXT = 255
# Timestamps before this are refused (the log starts long after; integer time maths stays
# positive), as are those after the last whole day datetime can represent.
EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def invalid(field: str, message: str, kind: str = "value_error") -> RequestValidationError:
    """A 422 ``request.invalid`` about one query parameter."""
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": kind}])


@dataclass(frozen=True)
class Filters:
    """Validated filters: ``start`` / ``end`` are aware datetimes in ``tz`` (end exclusive)."""

    start: datetime
    end: datetime
    tz: ZoneInfo
    model_version: str | None = None
    label: str | None = None  # a class name; None with no_match: "no strong match" only
    no_match: bool = False

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)

    @property
    def by_label(self) -> bool:
        """Whether the rows are restricted to one class (or to "no strong match")."""
        return self.label is not None or self.no_match

    def echo(self) -> dict[str, Any]:
        """The filters as the answers repeat them (local ISO datetimes)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "model_version": self.model_version,
            "label": NO_MATCH if self.no_match else self.label,
        }


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz`` (a midnight skipped by DST: the first that exists)."""
    return localize(datetime.combine(day, time()), tz)


def localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """``naive`` local wall time as an aware datetime in ``tz``; a wall time that does not
    exist (skipped by a DST change) becomes the instant the clocks jumped at."""
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz)


def _parse_time(field: str, value: str, tz: ZoneInfo) -> datetime:
    text = value.strip()
    expected = "an ISO date (2026-03-01) or datetime (2026-03-01T08:30, 2026-03-01T08:30Z)"
    try:
        if _DATE.fullmatch(text):
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time())
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise invalid(field, f"expected {expected}; got {text[:40]!r}") from None
    # Nothing is logged before 1971 or after 9999: a range reaching beyond means "from the
    # start" / "to the end", so it is clamped there rather than refused.
    try:
        parsed = localize(moment, tz) if moment.tzinfo is None else moment.astimezone(tz)
    except OverflowError:  # the first or last day of the calendar, shifted out of it
        return (EARLIEST if moment.year < EARLIEST.year else LATEST).astimezone(tz)
    return min(max(parsed, EARLIEST), LATEST).astimezone(tz)


def _text(field: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT or any(ord(c) < 32 for c in value):
        raise invalid(field, f"must be at most {MAX_TEXT} printable characters")
    return value


def parse_filters(
    tz: ZoneInfo,
    start: str | None = None,
    end: str | None = None,
    model_version: str | None = None,
    label: str | None = None,
    now: datetime | None = None,
) -> Filters:
    """Validate the query's filters (``now``: for tests; default the current time)."""
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    start_at = _parse_time("start", start, tz) if start else None
    end_at = _parse_time("end", end, tz) if end else None
    if end_at is None:  # the end of today (of the 30 days after a start in the future)
        end_at = local_midnight(today + timedelta(days=1), tz)
        if start_at is not None and start_at >= end_at:
            wall = start_at.astimezone(tz).replace(tzinfo=None)
            end_at = localize(wall + timedelta(days=DEFAULT_DAYS), tz)
    if start_at is None:  # the same wall time 30 days earlier
        wall = end_at.astimezone(tz).replace(tzinfo=None)
        start_at = localize(wall - timedelta(days=DEFAULT_DAYS), tz)
    if start_at >= end_at:
        raise invalid("end", f"must be after start ({start_at.isoformat()})")
    label = _text("label", label)
    return Filters(
        start=start_at,
        end=end_at,
        tz=tz,
        model_version=_text("model_version", model_version),
        label=None if label == NO_MATCH else label,
        no_match=label == NO_MATCH,
    )
