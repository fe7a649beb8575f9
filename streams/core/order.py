"""The one order records are judged in, by ``detect`` and by the stream (the forwarder sorts
with it): event time, then address changes before issuances before calls, then event id."""

from __future__ import annotations

from streams.core.records import ApiCall, Event, Issuance, NetworkChange

_KIND_RANK = {NetworkChange: 0, Issuance: 1, ApiCall: 2}
# Records about no instance come last among their millisecond: they change no verdict.
IRRELEVANT_RANK = 3

OrderKey = tuple[int, int, str]


def order_key(event: Event) -> OrderKey:
    return (event.event_time, _KIND_RANK[type(event)], event.event_id)


def irrelevant_order_key(time_ms: int | None) -> OrderKey:
    return (time_ms or 0, IRRELEVANT_RANK, "")
