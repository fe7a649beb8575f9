"""Ranges of event time, ``[start, end)``, as replay and backtest are given them
(``--start``/``--end``, ISO 8601)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.times import BadTime, format_time, parse_time


class BadRange(ValueError):
    """A time or range the user gave that is not one; the message names the option."""


@dataclass(frozen=True)
class TimeRange:
    """Event time from ``start_ms`` (included) to ``end_ms`` (excluded); None is unbounded."""

    start_ms: int | None = None
    end_ms: int | None = None

    def __contains__(self, time_ms: int) -> bool:
        return ((self.start_ms is None or time_ms >= self.start_ms)
                and (self.end_ms is None or time_ms < self.end_ms))

    @property
    def bounded(self) -> bool:
        return self.start_ms is not None or self.end_ms is not None

    def describe(self) -> str:
        start = format_time(self.start_ms) if self.start_ms is not None else "the beginning"
        end = format_time(self.end_ms) if self.end_ms is not None else "the end"
        return f"[{start}, {end})"


def parse_moment(value: str, option: str) -> int:
    """An ISO 8601 time (``2023-07-10T11:00:00Z``; no zone means UTC) → epoch milliseconds."""
    try:
        return parse_time(value.strip())
    except BadTime:
        raise BadRange(f"{option} {value!r} is not an ISO 8601 time such as "
                       "2023-07-10T11:00:00Z") from None


def parse_range(start: str | None, end: str | None) -> TimeRange:
    window = TimeRange(parse_moment(start, "--start") if start is not None else None,
                       parse_moment(end, "--end") if end is not None else None)
    if (window.start_ms is not None and window.end_ms is not None
            and window.start_ms >= window.end_ms):
        raise BadRange(f"--start {start} is not before --end {end}: the range "
                       f"{window.describe()} is empty")
    return window
