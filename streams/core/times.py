"""Event time: CloudTrail's timestamps as integer epoch milliseconds (small state, cheap
comparisons), and formatted back; every datetime made here is timezone-aware UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

MS_PER_S = 1000
# The instants ``format_time`` can write (years 1 to 9999 in UTC); a time outside is no event's.
MIN_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * MS_PER_S)
MAX_MS = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * MS_PER_S)


class BadTime(ValueError):
    """A timestamp that is not one CloudTrail or a log shipper writes."""


def parse_time(value: object) -> int:
    """``2023-07-10T11:57:22Z`` (fractions and offsets allowed) → epoch milliseconds."""
    if not isinstance(value, str) or not value:
        raise BadTime(f"not a timestamp: {value!r}")
    return _parse_time_text(value)


@lru_cache(maxsize=4096)  # CloudTrail's times are to the second: many records share one
def _parse_time_text(value: str) -> int:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadTime(f"not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        # CloudTrail's times are UTC even where a shipper dropped the zone.
        moment = moment.replace(tzinfo=UTC)
    try:
        epoch_ms = int(moment.timestamp() * MS_PER_S)
    except (OverflowError, ValueError):
        epoch_ms = MAX_MS + 1
    if not MIN_MS <= epoch_ms <= MAX_MS:
        raise BadTime(f"{value!r} is outside the years 1 to 9999 in UTC")
    return epoch_ms


_EXPIRATION_FORMATS = ("%b %d, %Y, %I:%M:%S %p", "%b %d, %Y %I:%M:%S %p")
# The usual spelling of both formats, read without ``strptime`` (a tenth of its cost): what this
# takes, strptime reads alike; anything else, or an impossible date, goes to strptime.
_EXPIRATION = re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{1,2}), "
                         r"(\d{4}),? (\d{1,2}):(\d\d):(\d\d) (AM|PM)\Z")
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def _usual_expiration(value: str) -> int | None:
    match = _EXPIRATION.match(value)
    if match is None:
        return None
    month, day, year, hour, minute, second, half = match.groups()
    hour_12 = int(hour)
    if not 1 <= hour_12 <= 12:
        return None
    hour_24 = hour_12 % 12 + (12 if half == "PM" else 0)
    try:
        moment = datetime(int(year), _MONTHS[month], int(day), hour_24, int(minute),
                          int(second), tzinfo=UTC)
        return int(moment.timestamp() * MS_PER_S)
    except (ValueError, OverflowError):
        return None


def parse_expiration(value: object) -> int | None:
    """Credential expiration in any of the shapes CloudTrail has used; None when unknown.

    sts:AssumeRole logs it as ``Jul 10, 2023, 6:30:22 PM`` (UTC), newer events as ISO 8601, and
    some exports as epoch milliseconds.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value != value or not -1e15 < value < 1e15:  # NaN, infinite, or no time at all
            return None
        return int(value if value > 1e11 else value * MS_PER_S)
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except BadTime:
        pass
    usual = _usual_expiration(value)
    if usual is not None:
        return usual
    for fmt in _EXPIRATION_FORMATS:
        try:
            return int(datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp() * MS_PER_S)
        except (ValueError, OverflowError):
            continue
    return None


def format_time(epoch_ms: int) -> str:
    """Epoch milliseconds → ``2023-07-10T11:57:22.000Z``, GuardDuty's finding time format;
    clamped to years 1 to 9999, so state written before ``parse_time`` checked renders."""
    epoch_ms = min(max(epoch_ms, MIN_MS), MAX_MS)
    moment = datetime.fromtimestamp(epoch_ms / MS_PER_S, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % MS_PER_S:03d}Z"
