"""Local-time buckets (hour, day, week, month; weekday x hour) computed in SQL.

Every row reaches the bucketing as ``ts``: whole seconds since 1970-01-01T00:00Z (the rollups
store whole UTC hours; a log row's ``created_at`` is floored to the second). The SQL answers
each bucket as ``lsec``: its start as a *local wall time* counted in seconds since the epoch,
plus, for hours, the UTC offset in force (the hour 02:00 of the night clocks go back happens
twice, once at +02:00 and once at +01:00: two buckets). Python only turns those few keys into
ISO datetimes.

The zone's UTC offsets over the queried range are worked out in Python from zoneinfo
(:func:`offset_intervals`: every transition, to the second) and become ``CASE WHEN ts < t1
THEN o0 WHEN ts < t2 THEN o1 ... END``; the local wall time is ``ts + offset`` and days, weeks
(Monday first) and hours follow by integer arithmetic; months from the already grouped days
(SQLite: ``strftime(..., 'start of month')``, PostgreSQL: ``date_trunc('month', ...)`` in
UTC). The same SQL on both databases, with the same zone data as the Python side (SQLite
knows no time zones; PostgreSQL's ``AT TIME ZONE`` per row cost about 10 us, 300 ms for a
month of hourly buckets per class).

The hourly rollups can serve local buckets exactly when the zone's offsets are whole hours and
change on the hour over the range (:func:`hour_aligned`); otherwise (India, Nepal, parts of
Australia, Newfoundland...) the queries read the log itself: exact, slower on a large log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from lookalike.analytics.filters import localize

Bucket = Literal["hour", "day", "week", "month"]
BUCKETS: tuple[Bucket, ...] = ("hour", "day", "week", "month")
EPOCH = datetime(1970, 1, 1)
HOUR = 3600
DAY = 86_400
# Offsets are sampled this often and every change is then found to the second; no zone
# changes its offset twice within a few hours.
SAMPLE_SECONDS = 6 * HOUR


@dataclass(frozen=True)
class OffsetInterval:
    """``[start, end)`` in epoch seconds, during which local time is UTC + ``offset`` s."""

    start: int
    end: int
    offset: int


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch (floored) of an aware datetime."""
    return (moment.astimezone(UTC).replace(tzinfo=None) - EPOCH) // timedelta(seconds=1)


def utc_from_seconds(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _offset(tz: ZoneInfo, seconds: int) -> int:
    delta = datetime.fromtimestamp(seconds, tz).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


def offset_intervals(tz: ZoneInfo, start: int, end: int) -> list[OffsetInterval]:
    """The UTC offsets of ``tz`` from ``start`` to ``end`` (epoch seconds), as contiguous
    intervals; the first starts at ``start``, the last ends at ``end``."""
    intervals: list[OffsetInterval] = []
    begin, current = start, _offset(tz, start)
    probe = start
    while probe < end:
        nxt = min(probe + SAMPLE_SECONDS, end)
        if _offset(tz, nxt) != current:
            lo, hi = probe, nxt  # offset(lo) == current != offset(hi): a change in (lo, hi]
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(tz, mid) == current:
                    lo = mid
                else:
                    hi = mid
            intervals.append(OffsetInterval(begin, hi, current))
            begin, current = hi, _offset(tz, hi)
            probe = hi
            continue
        probe = nxt
    intervals.append(OffsetInterval(begin, max(end, begin + 1), current))
    return intervals


def hour_aligned(intervals: list[OffsetInterval]) -> bool:
    """Whether every UTC hour lies in one local hour (whole-hour offsets, changed on the hour)."""
    return all(i.offset % HOUR == 0 for i in intervals) and all(
        i.start % HOUR == 0 for i in intervals[1:]
    )


class Clock:
    """Bucketing SQL for one query: a dialect, a zone and the offsets over the range."""

    def __init__(self, dialect: str, tz: ZoneInfo, start: datetime, end: datetime) -> None:
        self.dialect = dialect
        self.tz = tz
        # A day of margin each side: rows at the range's edges get their offset too.
        self.intervals = offset_intervals(tz, epoch_seconds(start) - DAY, epoch_seconds(end) + DAY)

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def hour_aligned(self) -> bool:
        return hour_aligned(self.intervals)

    # -- SQL -----------------------------------------------------------------------------

    def offset(self, ts: str) -> str:
        """The UTC offset in seconds at ``ts`` (SQL)."""
        if len(self.intervals) == 1:
            return str(self.intervals[0].offset)
        branches = " ".join(f"WHEN {ts} < {i.end} THEN {i.offset}" for i in self.intervals[:-1])
        return f"(CASE {branches} ELSE {self.intervals[-1].offset} END)"

    def wall(self, ts: str) -> str:
        """Local wall time in seconds since the epoch (SQL)."""
        return f"({ts} + {self.offset(ts)})"

    def start_of(self, bucket: Bucket, ts: str) -> str:
        """``lsec`` of the bucket holding ``ts`` (SQL). Months: see :meth:`month_of_day`."""
        wall = self.wall(ts)
        if bucket == "hour":
            return f"({wall} / {HOUR} * {HOUR})"
        if bucket == "day":
            return f"({wall} / {DAY} * {DAY})"
        if bucket == "week":
            day = f"({wall} / {DAY})"
            return f"(({day} - ({day} + 3) % 7) * {DAY})"  # 1970-01-01 was a Thursday
        raise ValueError("months are grouped from days: use month_of_day")

    def month_of_day(self, day_lsec: str) -> str:
        """``lsec`` of the month holding an already computed day start (SQL)."""
        if self.postgres:
            return (
                "CAST(extract(epoch FROM date_trunc('month',"
                f" to_timestamp({day_lsec}) AT TIME ZONE 'UTC')) AS BIGINT)"
            )
        return f"CAST(strftime('%s', {day_lsec}, 'unixepoch', 'start of month') AS INTEGER)"

    def weekday(self, ts: str) -> str:
        """0 = Monday ... 6 = Sunday, local (SQL)."""
        return f"(({self.wall(ts)} / {DAY} + 3) % 7)"

    def hour_of_day(self, ts: str) -> str:
        """0-23, local (SQL)."""
        return f"(({self.wall(ts)} % {DAY}) / {HOUR})"

    def params(self) -> dict[str, str]:
        return {}

    # -- Python: keys back to datetimes ---------------------------------------------------

    def bucket_start(self, lsec: int, offset: int | None = None) -> datetime:
        """The aware local datetime a bucket starts at (``offset``: the hour's, when known)."""
        wall = EPOCH + timedelta(seconds=int(lsec))
        if offset is not None:
            fixed = wall.replace(tzinfo=UTC) - timedelta(seconds=int(offset))
            return fixed.astimezone(self.tz)
        return localize(wall, self.tz)

    def day_spans(self, day_lsec: int) -> list[tuple[int, int]]:
        """The instants (epoch-second ranges) whose local date is the day starting at
        ``day_lsec``: what SQL's day bucket holds. Usually one range; two when clocks went
        back across midnight."""
        spans: list[tuple[int, int]] = []
        for i in self.intervals:
            lo = max(i.start, day_lsec - i.offset)
            hi = min(i.end, day_lsec + DAY - i.offset)
            if lo < hi:
                if spans and spans[-1][1] == lo:
                    spans[-1] = (spans[-1][0], hi)
                else:
                    spans.append((lo, hi))
        return spans


def day_string(lsec: int) -> str:
    """``YYYY-MM-DD`` of a local day start."""
    return (EPOCH + timedelta(seconds=int(lsec))).date().isoformat()
