"""The input topic's wire format, written by the forwarder and read by the worker and replay:
one record per message, or a batch (header ``exfilguard-batch: ndjson``) of records one per line
bound for one partition; a broadcast copy that only changes addresses is marked network-only."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from itertools import accumulate
from operator import add
from typing import NamedTuple

# On the broadcast copies of a call that also changes addresses: apply the change only.
NETWORK_ONLY_HEADER = "exfilguard-network-only"
# On a message that holds several records, one per line (no per-record key).
BATCH_HEADER = "exfilguard-batch"
BATCH_FORMAT = b"ndjson"
BATCH_RECORDS = 500  # the forwarder's default
# Event time one batch spans at most: it is timestamped with its earliest record, so replay
# starts reading this much before a range's start.
BATCH_SPAN_MS = 60_000
# Under the broker's and librdkafka's 1 MB default message size, whatever the compression.
BATCH_BYTES = 900_000

NETWORK_ONLY = [(NETWORK_ONLY_HEADER, b"1")]
BATCHED = [(BATCH_HEADER, BATCH_FORMAT)]

Headers = Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None


class Message(NamedTuple):
    key: bytes | None
    value: bytes
    partition: int | None  # None: Kafka's partitioner places it by key
    timestamp: int
    headers: list[tuple[str, bytes]] | None = None


def _marks(headers: Headers) -> Mapping[str, bytes]:
    if not headers:
        return {}
    return headers if isinstance(headers, Mapping) else dict(headers)


def is_batch(headers: Headers) -> bool:
    return _marks(headers).get(BATCH_HEADER) == BATCH_FORMAT


def is_network_only(headers: Headers) -> bool:
    return NETWORK_ONLY_HEADER in _marks(headers)


def records_of(value: bytes, headers: Headers) -> Iterator[tuple[int | None, bytes]]:
    """(line counted from 1, or None for a one-record message; the record's bytes)."""
    if not is_batch(headers):
        yield None, value
        return
    for number, raw in enumerate(value.split(b"\n"), start=1):
        if raw.strip():
            yield number, raw


def as_line(payload: bytes) -> bytes:
    """A record's bytes as one line of a batch (in valid JSON only whitespace holds a newline)."""
    return payload.replace(b"\n", b" ") if b"\n" in payload else payload


class _Open:
    __slots__ = ("lines", "size", "low", "high")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self.low: int | None = None
        self.high: int | None = None


class Batcher:
    """One open batch per partition, closed by count, bytes or event-time span; ``closed``
    hands out the batches closed so far, ``flush`` closes the rest."""

    def __init__(self, max_records: int, max_bytes: int = BATCH_BYTES,
                 max_span_ms: int = BATCH_SPAN_MS) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_span_ms = max_span_ms
        self.open: dict[int, _Open] = {}
        self._closed: list[Message] = []

    def add(self, partition: int, payload: bytes, time_ms: int | None) -> None:
        self.extend(partition, [payload], [time_ms])

    def extend(self, partition: int, payloads: list[bytes], times: list[int | None]) -> None:
        """Add records bound for one partition, in order. The forwarder runs it for every
        record: where the run's times cannot close a batch by span, the cuts by count and
        bytes are found by bisection over the cumulative sizes, not record by record; the
        result is ``_extend_each``'s, the rule stated one record at a time."""
        if len(payloads) != len(times):
            raise ValueError("extend: as many times as payloads")
        batch = self.open.get(partition)
        if batch is None:
            batch = self.open[partition] = _Open()
        # A record written over several lines becomes one line in ``_message`` (the same
        # length: its newlines become spaces), where the batch's bytes are read anyway.
        count = len(payloads)
        # bound[k]: bytes of payloads[:k] with their newlines, minus one (strictly increasing).
        cumulative = list(accumulate(map(len, payloads), initial=0))
        bound = list(map(add, cumulative, range(-1, count)))
        max_records, max_bytes, span = self.max_records, self.max_bytes, self.max_span_ms
        start = 0
        while start < count:
            lines = batch.lines
            held = len(lines)
            # Records start.. fit by bytes while size + their bytes (newlines but the last's)
            # stays within max_bytes, and by count up to max_records.
            limit = max_bytes - batch.size + cumulative[start] + start
            end = min(bisect_right(bound, limit, start) - 1, start + max_records - held)
            if not held and end <= start:
                end = start + 1  # an empty batch takes its first record whatever its size
            end = max(end, start)
            timed = [t for t in times[start:end] if t is not None]
            if batch.low is not None:
                timed += (batch.low, batch.high)
            if not timed or max(timed) - min(timed) <= span:  # no close by span in the run
                lines += payloads[start:end]
                batch.size += cumulative[end] - cumulative[start] + (end - start)
                if timed:
                    batch.low, batch.high = min(timed), max(timed)
                if end < count:  # the next record does not fit: this batch is done
                    self._closed.append(_message(partition, lines, batch.low))
                    batch.lines, batch.size, batch.low, batch.high = [], 0, None, None
                start = end
                continue
            # The span closes a batch somewhere in the run: one record at a time.
            self._extend_each(partition, batch, payloads[start:end], times[start:end])
            start = end

    def _extend_each(self, partition: int, batch: _Open, payloads: list[bytes],
                     times: list[int | None]) -> None:
        lines, size, low, high = batch.lines, batch.size, batch.low, batch.high
        max_records, max_bytes, span = self.max_records, self.max_bytes, self.max_span_ms
        for payload, time_ms in zip(payloads, times, strict=True):
            length = len(payload)
            # A record with no valid time fits anywhere: the worker rejects it.
            if lines and (len(lines) >= max_records or size + length > max_bytes or (
                    time_ms is not None and low is not None
                    and (time_ms - low > span or high - time_ms > span))):  # type: ignore[operator]
                self._closed.append(_message(partition, lines, low))
                lines, size, low, high = [], 0, None, None
            lines.append(payload)
            size += length + 1
            if time_ms is not None:
                if low is None:
                    low = high = time_ms
                elif time_ms < low:
                    low = time_ms
                elif time_ms > high:  # type: ignore[operator]
                    high = time_ms
        batch.lines, batch.size, batch.low, batch.high = lines, size, low, high

    def closed(self) -> list[Message]:
        closed, self._closed = self._closed, []
        return closed

    def flush(self) -> Iterator[Message]:
        yield from self.closed()
        for partition in sorted(self.open):
            batch = self.open.pop(partition)
            if batch.lines:
                yield _message(partition, batch.lines, batch.low)


def _message(partition: int, lines: list[bytes], low: int | None) -> Message:
    value = b"\n".join(lines)
    if value.count(b"\n") != len(lines) - 1:  # a record held line breaks: as_line, each
        value = b"\n".join(map(as_line, lines))
    return Message(None, value, partition, low or 0, BATCHED)
