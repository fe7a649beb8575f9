"""Produce CloudTrail records to Kafka with confluent-kafka, lose none, report every failure.

Each record goes to its instance's partition (``streams.kafka.routing``) and is timestamped with its
eventTime, so replay can find a time range by offsets-for-times. Records are sorted by event
time within each file, the order CloudTrail's own delivery nearly has.

By default records travel in batches: one message per partition holds up to ``BATCH_RECORDS``
records, one per line, in order, spanning at most ``BATCH_SPAN_MS`` of event time and
timestamped with the earliest. A worker pays a fixed cost per Kafka message, so this is what
lets one worker keep up with an organisation's CloudTrail (README, Performance).
``batch_records=1`` sends one keyed message per record, the format any other producer can use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec
from confluent_kafka import KafkaException, Producer

from streams.core.records import MAX_RECORD_BYTES, NETWORK_EVENTS
from streams.core.times import BadTime, parse_time
from streams.kafka.routing import (
    BATCH_FORMAT,
    BATCH_HEADER,
    BATCH_RECORDS,
    BATCH_SPAN_MS,
    NETWORK_ONLY_HEADER,
    partitions_of,
    route_of,
)
from streams.kafka.settings import KafkaSettings
from streams.sources.files import BadLine, Item, Record

_decoder = msgspec.json.Decoder()
NETWORK_ONLY = [(NETWORK_ONLY_HEADER, b"1")]
BATCHED = [(BATCH_HEADER, BATCH_FORMAT)]
SORT_CHUNK = 50_000  # records sorted together at most (one CloudTrail file is far fewer)
# Under the broker's and librdkafka's 1 MB default message size, whatever the compression.
BATCH_BYTES = 900_000


@dataclass
class ForwardStats:
    records: int = 0
    messages: int = 0
    delivered: int = 0
    skipped: list[str] = field(default_factory=list)
    skipped_count: int = 0
    failed: int = 0
    first_failure: str | None = None


def producer_config(settings: KafkaSettings) -> dict:
    return {
        **settings.confluent(),
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "zstd",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        # The Java client's partitioner, which aiokafka (the worker) shares: keys land alike.
        "partitioner": "murmur2_random",
        "message.timeout.ms": 120_000,
    }


@dataclass(frozen=True, slots=True)
class Outgoing:
    time_ms: int | None
    origin: str
    payload: bytes
    record: object


def _prepare(item: Record, stats: ForwardStats) -> Outgoing | None:
    if item.raw is not None and len(item.raw) > MAX_RECORD_BYTES:
        # Past what any CloudTrail record is, and past what a broker takes by default.
        _skip(stats, item.origin, f"record of {len(item.raw)} bytes exceeds {MAX_RECORD_BYTES}")
        return None
    record = item.data
    if item.raw is not None:
        try:
            record = _decoder.decode(item.raw)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            _skip(stats, item.origin, f"not JSON ({exc})")
            return None
        except RecursionError:
            _skip(stats, item.origin, "not JSON a decoder can take (nested too deeply)")
            return None
    if not isinstance(record, dict):
        _skip(stats, item.origin, "not a JSON object")
        return None
    detail = record.get("detail") if "eventName" not in record else None
    inner = detail if isinstance(detail, dict) else record
    try:
        time_ms = parse_time(inner.get("eventTime") or inner.get("@timestamp"))
    except BadTime:
        time_ms = None  # forwarded all the same: the worker dead-letters it with the reason
    return Outgoing(time_ms, item.origin, item.as_bytes(), record)


def _delivery_order(outgoing: Outgoing) -> tuple[int, int, str]:
    """Event time, then address changes, issuances and calls, then event id: the order
    ``exfilguard detect`` judges records in, so the stream sees what the offline run sees."""
    record = outgoing.record if isinstance(outgoing.record, dict) else {}
    inner = record.get("detail") if "eventName" not in record else record
    inner = inner if isinstance(inner, dict) else {}
    name = inner.get("eventName")
    rank = 0 if name in NETWORK_EVENTS else 1 if name == "AssumeRole" else 2
    event_id = inner.get("eventID")
    return (outgoing.time_ms or 0, rank, event_id if isinstance(event_id, str) else "")


def _skip(stats: ForwardStats, origin: str, reason: str) -> None:
    stats.skipped_count += 1
    if len(stats.skipped) < 20:
        stats.skipped.append(f"{origin}: {reason}")


def sorted_batches(items: Iterable[Item], stats: ForwardStats) -> Iterator[list[Outgoing]]:
    batch: list[Outgoing] = []
    current_file = None
    for item in items:
        stats.records += 1
        if isinstance(item, BadLine):
            _skip(stats, item.origin, item.reason)
            continue
        file_name = item.origin.rsplit(":", 1)[0].split("[", 1)[0]
        if batch and (file_name != current_file or len(batch) >= SORT_CHUNK):
            yield sorted(batch, key=_delivery_order)
            batch = []
        current_file = file_name
        outgoing = _prepare(item, stats)
        if outgoing is not None:
            batch.append(outgoing)
    if batch:
        yield sorted(batch, key=_delivery_order)


class Message(NamedTuple):
    key: bytes | None
    value: bytes
    partition: int | None  # None: Kafka's partitioner places it by key
    timestamp: int
    headers: list[tuple[str, bytes]] | None = None


def messages(batches: Iterable[list[Outgoing]], partitions: int,
             batch_records: int = BATCH_RECORDS) -> Iterator[Message]:
    """The messages that carry the records (sorted batches from ``sorted_batches``)."""
    if batch_records <= 1:
        for batch in batches:
            for outgoing in batch:
                yield from _single(outgoing, partitions)
        return
    batcher = _Batcher(batch_records)
    spread = 0  # records that belong to no instance: any partition, in turn
    for batch in batches:
        for outgoing in batch:
            targets = partitions_of(route_of(outgoing.record), partitions)
            if not targets:
                targets = {spread % partitions}
                spread += 1
            payload = outgoing.payload
            if b"\n" in payload:  # in valid JSON only whitespace between tokens
                payload = payload.replace(b"\n", b" ")
            for partition in sorted(targets):
                yield from batcher.add(partition, payload, outgoing.time_ms)
    yield from batcher.flush()


def _single(outgoing: Outgoing, partitions: int) -> Iterator[Message]:
    route = route_of(outgoing.record)
    timestamp = outgoing.time_ms or 0
    if route.broadcast:
        for p in range(partitions):
            yield Message(route.keys[0], outgoing.payload, p, timestamp)
    else:
        for key in route.keys:
            yield Message(key, outgoing.payload, None, timestamp)
    if route.network_broadcast:
        for p in range(partitions):
            yield Message(route.keys[0], outgoing.payload, p, timestamp, NETWORK_ONLY)


class _Open:
    __slots__ = ("lines", "size", "low", "high")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self.low: int | None = None
        self.high: int | None = None


class _Batcher:
    """One open batch per partition, closed by count, bytes or event-time span."""

    def __init__(self, max_records: int, max_bytes: int = BATCH_BYTES,
                 max_span_ms: int = BATCH_SPAN_MS) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_span_ms = max_span_ms
        self.open: dict[int, _Open] = {}

    def add(self, partition: int, payload: bytes, time_ms: int | None) -> Iterator[Message]:
        batch = self.open.get(partition)
        if batch is not None and batch.lines and not self._fits(batch, payload, time_ms):
            yield self._close(partition)
            batch = None
        if batch is None:
            batch = self.open[partition] = _Open()
        batch.lines.append(payload)
        batch.size += len(payload) + 1
        if time_ms is not None:  # a record with no valid time fits anywhere: it is rejected
            batch.low = time_ms if batch.low is None else min(batch.low, time_ms)
            batch.high = time_ms if batch.high is None else max(batch.high, time_ms)

    def _fits(self, batch: _Open, payload: bytes, time_ms: int | None) -> bool:
        if len(batch.lines) >= self.max_records or batch.size + len(payload) > self.max_bytes:
            return False
        if time_ms is None or batch.low is None:
            return True
        return max(batch.high, time_ms) - min(batch.low, time_ms) <= self.max_span_ms

    def _close(self, partition: int) -> Message:
        batch = self.open.pop(partition)
        return Message(None, b"\n".join(batch.lines), partition, batch.low or 0, BATCHED)

    def flush(self) -> Iterator[Message]:
        for partition in sorted(self.open):
            yield self._close(partition)


def forward(items: Iterable[Item], settings: KafkaSettings, topic: str, partitions: int,
            progress=None, batch_records: int = BATCH_RECORDS) -> ForwardStats:
    stats = ForwardStats()
    producer = Producer(producer_config(settings))

    def delivered(err, msg) -> None:
        if err is not None:
            stats.failed += 1
            if stats.first_failure is None:
                stats.first_failure = f"{topic}: {err.str()}"
        else:
            stats.delivered += 1

    def counted(batches: Iterator[list[Outgoing]]) -> Iterator[list[Outgoing]]:
        for batch in batches:
            yield batch
            if progress is not None:
                progress.update(len(batch))

    for message in messages(counted(sorted_batches(items, stats)), partitions, batch_records):
        kwargs = {"partition": message.partition} if message.partition is not None else {}
        if message.headers:
            kwargs["headers"] = message.headers
        while True:
            try:
                producer.produce(topic, value=message.value, key=message.key,
                                 timestamp=message.timestamp, on_delivery=delivered, **kwargs)
                break
            except BufferError:
                producer.poll(0.5)  # queue full: wait for deliveries, then retry
            except KafkaException as exc:
                stats.failed += 1
                stats.first_failure = stats.first_failure or str(exc.args[0].str())
                break
        stats.messages += 1
        producer.poll(0)
    remaining = producer.flush(120)
    if remaining:
        stats.failed += remaining
        stats.first_failure = stats.first_failure or f"{remaining} messages not delivered in 120 s"
    return stats
