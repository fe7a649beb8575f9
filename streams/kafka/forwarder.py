"""Produce CloudTrail records to Kafka, lose none, report every failure: each to its instance's
partition (``routing``), timestamped with its eventTime, sorted within a file by the core's
``order_key``, in batches by default (``batches``; ``batch_records=1``: one keyed message each)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import KafkaException, Producer

from streams.core.order import OrderKey, irrelevant_order_key, order_key
from streams.core.records import MAX_RECORD_BYTES, Event, event_time_of, normalise, unwrap
from streams.kafka.batches import BATCH_RECORDS, NETWORK_ONLY, Batcher, Message, as_line
from streams.kafka.routing import Route, partitions_of, route_of_event
from streams.kafka.settings import KafkaSettings
from streams.sources.files import BadLine, Item, Record

_decoder = msgspec.json.Decoder()
SORT_CHUNK = 50_000  # records sorted together at most (one CloudTrail file is far fewer)


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
    order: OrderKey  # the core's order: the stream judges records as ``detect`` does
    origin: str
    payload: bytes
    record: object
    event: Event | None  # None: about no instance, or malformed (routed by its access key)

    @property
    def route(self) -> Route:
        return route_of_event(self.event, self.record)


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
    try:
        event = normalise(unwrap(record))
    except ValueError:
        event = None  # forwarded all the same: the worker dead-letters it with the reason
    if event is not None:
        return Outgoing(event.event_time, order_key(event), item.origin, item.as_bytes(),
                        record, event)
    try:
        time_ms = event_time_of(unwrap(record))
    except ValueError:
        time_ms = None
    return Outgoing(time_ms, irrelevant_order_key(time_ms), item.origin, item.as_bytes(),
                    record, None)


def _order(outgoing: Outgoing) -> OrderKey:
    return outgoing.order


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
            yield sorted(batch, key=_order)
            batch = []
        current_file = file_name
        outgoing = _prepare(item, stats)
        if outgoing is not None:
            batch.append(outgoing)
    if batch:
        yield sorted(batch, key=_order)


def messages(batches: Iterable[list[Outgoing]], partitions: int,
             batch_records: int = BATCH_RECORDS) -> Iterator[Message]:
    """The messages that carry the records (sorted batches from ``sorted_batches``)."""
    if batch_records <= 1:
        for batch in batches:
            for outgoing in batch:
                yield from _single(outgoing, partitions)
        return
    batcher = Batcher(batch_records)
    spread = 0  # records that belong to no instance: any partition, in turn
    for batch in batches:
        for outgoing in batch:
            targets = partitions_of(outgoing.route, partitions)
            if not targets:
                targets = {spread % partitions}
                spread += 1
            payload = as_line(outgoing.payload)
            for partition in sorted(targets):
                yield from batcher.add(partition, payload, outgoing.time_ms)
    yield from batcher.flush()


def _single(outgoing: Outgoing, partitions: int) -> Iterator[Message]:
    route = outgoing.route
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
