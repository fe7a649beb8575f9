"""The one order records are judged in, by ``detect`` and by the stream (the forwarder sorts
with it): event time, then address changes before issuances before calls, then event id, then
the record's content, so no two different records tie and input order never decides; and the
buffer that restores that order over input out of order within a window of event time."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
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


class ReorderBuffer:
    """Values back in key order (``order_key``) from input out of order by a
    bounded amount of event time: each is held until the caller says nothing read later can
    come before it (``release``). One that still comes after a later one went out is late:
    handed back by ``push`` to be judged at once, as the stream judges a record that arrives
    late."""

    def __init__(self) -> None:
        self._held: list[tuple[OrderKey, int, Any]] = []
        self._arrival = itertools.count()  # identical events: first read, first out
        self._last: OrderKey | None = None

    def __len__(self) -> int:
        return len(self._held)

    def push(self, key: OrderKey, value: Any) -> bool:
        """Hold ``value``; False when it is late (not held)."""
        if self._last is not None and key < self._last:
            return False
        heapq.heappush(self._held, (key, next(self._arrival), value))
        return True

    def release(self, before_ms: int | None) -> Iterator[Any]:
        """The values held from before ``before_ms`` of event time (None: all), in order."""
        held = self._held
        while held and (before_ms is None or held[0][0][0] < before_ms):
            key, _, value = heapq.heappop(held)
            self._last = key
            yield value
