"""The one order records are judged in, by ``detect`` and by the stream (the forwarder sorts
with it): event time, then address changes before issuances before calls, then event id, then
the record's content, so no two different records tie and input order never decides."""

from __future__ import annotations

from functools import total_ordering
from typing import Any

from streams.core.records import ApiCall, Event, Issuance, NetworkChange

_KIND_RANK = {NetworkChange: 0, Issuance: 1, ApiCall: 2}
# Records about no instance come last among their millisecond: they change no verdict.
IRRELEVANT_RANK = 3

# (event time, kind rank, event id[, content]): irrelevant records leave out the content.
OrderKey = tuple[Any, ...]


@total_ordering
class _Content:
    """The last word between two events equal in time, kind and id: their fields, compared
    only when it comes to that (rarely), so sorting costs no more than before."""

    __slots__ = ("event",)

    def __init__(self, event: Event) -> None:
        self.event = event

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Content) and repr(self.event) == repr(other.event)

    def __lt__(self, other: _Content) -> bool:
        return repr(self.event) < repr(other.event)

    def __hash__(self) -> int:
        return hash(repr(self.event))


def order_key(event: Event) -> OrderKey:
    return (event.event_time, _KIND_RANK[type(event)], event.event_id, _Content(event))


def irrelevant_order_key(time_ms: int | None) -> OrderKey:
    return (time_ms or 0, IRRELEVANT_RANK, "")
