"""The input topic's wire format, written by the forwarder and read by the worker and replay:
one record per message, or a batch (header ``exfilguard-batch: ndjson``) of records one per line
bound for one partition; a broadcast copy that only changes addresses is marked network-only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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
        """Add records bound for one partition, in order (a loop over locals: the forwarder
        runs it for every record)."""
        batch = self.open.get(partition)
        if batch is None:
            batch = self.open[partition] = _Open()
        lines, size, low, high = batch.lines, batch.size, batch.low, batch.high
        max_records, max_bytes, span = self.max_records, self.max_bytes, self.max_span_ms
        for payload, time_ms in zip(payloads, times, strict=True):
            if b"\n" in payload:  # a record written over several lines
                payload = as_line(payload)
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
    return Message(None, b"\n".join(lines), partition, low or 0, BATCHED)
