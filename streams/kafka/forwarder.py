"""Produce CloudTrail records to Kafka, lose none, report every failure: each to its instance's
partition (``routing``), timestamped with its eventTime, sorted within a file by the core's
``order_key``, in batches by default (``batches``; ``batch_records=1``: one keyed message each)."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from operator import attrgetter, is_
from typing import Any

import msgspec
from confluent_kafka import KafkaException, Producer

from streams.core.order import OrderKey, irrelevant_order_key, order_key
from streams.core.records import (
    MAX_RECORD_BYTES,
    NETWORK_EVENTS,
    Event,
    decode_json,
    event_time_of,
    normalise,
    unwrap,
)
from streams.core.times import BadTime, parse_time
from streams.kafka.batches import BATCH_RECORDS, NETWORK_ONLY, Batcher, Message
from streams.kafka.routing import Route, partition_for, partitions_of, route_of_event
from streams.kafka.settings import KafkaSettings
from streams.sources.files import BadLine, Item, Lines, Record

SORT_CHUNK = 50_000  # records sorted together at most (one CloudTrail file is far fewer)
_GC_THRESHOLD = 50_000  # the collector's first-generation threshold while forwarding


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
        # Level 1: the same ratio on CloudTrail batches as the default 3, at half the CPU.
        "compression.level": 1,
        "linger.ms": 20,
        "batch.size": 1_000_000,
        # The Java client's partitioner, which aiokafka (the worker) shares: keys land alike.
        "partitioner": "murmur2_random",
        "message.timeout.ms": 120_000,
    }


class Outgoing(msgspec.Struct, gc=False):
    """One record ready to sort and route. One is made for every record the forwarder sends:
    untracked by the garbage collector (it holds no cycle), so a file's worth of them is never
    walked."""

    time_ms: int | None
    order: OrderKey  # the core's order: the stream judges records as ``detect`` does
    payload: bytes
    route: Route
    event: Event | None  # None: about no instance, or malformed (routed by its access key)


class _Identity(msgspec.Struct, gc=False):
    arn: str | None = None
    accessKeyId: str | None = None
    invokedBy: str | None = None


class _Response(msgspec.Struct, gc=False):
    credentials: Any = None  # what an AssumeRole minted; built only where there is one


class _Envelope(msgspec.Struct, gc=False):
    """The top-level fields that tell a record about no instance, and time and route it; the
    rest of the record is parsed but not built, which is what keeps the forwarder fast. A field
    of another type fails the decode: such a record takes the full one."""

    eventName: str | msgspec.UnsetType = msgspec.UNSET
    eventTime: str | None = None
    timestamp: str | None = msgspec.field(default=None, name="@timestamp")
    userIdentity: _Identity | None = None
    errorCode: str | None = None
    responseElements: _Response | None = None


_envelope = msgspec.json.Decoder(_Envelope)
# Names only the full decode may judge (an address change), and a missing one (an EventBridge
# event: its record is in ``detail``). An AssumeRole is decoded when EC2 invoked it (an
# issuance) or an instance signed it; any other is routed here, with its minted key's copy.
_DECODED_NAMES = frozenset({*NETWORK_EVENTS, msgspec.UNSET})
_EC2 = "ec2.amazonaws.com"
_SESSION_MARK = ":assumed-role/"
_INSTANCE_SESSION = ("i-", "I-")
# eventTime → (ms, order key): one CloudTrail second holds many records. Cleared when large,
# so hostile input cannot grow it.
_timed: dict[str | None, tuple[int | None, OrderKey]] = {}
_CACHED = 100_000
# access key → the Route of a record signed with it (frozen: shared by every such record, so
# a recurring key costs no encode, tuple or Route). Cleared when large, as ``_timed``.
_routes: dict[str | None, Route] = {}


def _timed_of(value: str | None) -> tuple[int | None, OrderKey]:
    try:
        time_ms = parse_time(value) if value is not None else None
    except BadTime:
        time_ms = None  # what event_time_of rejects: the worker dead-letters it
    if len(_timed) > _CACHED:
        _timed.clear()
    timed = _timed[value] = (time_ms, irrelevant_order_key(time_ms))
    return timed


def _route_of_key(key: str | None) -> Route:
    if len(_routes) > _CACHED:
        _routes.clear()
    route = _routes[key] = Route((key.encode() if key else None,))
    return route


def envelope_outgoing(lines: list[bytes]) -> list[Outgoing | None]:
    """For each record, the record about no instance timed and routed
    from its envelope as the full decode would (same time, same key), or None: it may concern
    an instance, or only the full decode can say (an EventBridge event, an odd shape, non-ASCII
    bytes: skipped strings are not checked for UTF-8, which the full decode reports).

    The test is ``normalise``'s own, from the outside in: only an ``AssumeRole`` EC2 invoked,
    an address change or a session named like an instance (``assumed-role/ROLE/i-…``) can
    become an event; the route is ``route_of_event``'s (an AssumeRole signed with a key has a
    copy under the key it minted). Escapes are decoded, so no spelling of a name slips past
    it. One loop over a file's lines, no call per record but the decode: this is the
    forwarder's hot path.
    """
    out: list[Outgoing | None] = []
    append = out.append
    decode = _envelope.decode
    timed_cache = _timed
    routes = _routes
    decoded_names = _DECODED_NAMES
    for raw in lines:
        if len(raw) > MAX_RECORD_BYTES or not raw.isascii():
            append(None)
            continue
        try:
            envelope = decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            append(None)
            continue
        name = envelope.eventName
        if name in decoded_names:
            append(None)
            continue
        identity = envelope.userIdentity
        if identity is None:
            key = None
        else:
            arn = identity.arn
            if (arn is not None and _SESSION_MARK in arn
                    and arn.rpartition("/")[2][:2] in _INSTANCE_SESSION):
                append(None)
                continue
            key = identity.accessKeyId
        if name == "AssumeRole":
            if identity is not None and identity.invokedBy == _EC2:
                append(None)
                continue
            route = _assume_role_route(envelope, key)
        else:
            route = routes.get(key)
            if route is None:
                route = _route_of_key(key)
        value = envelope.eventTime
        if value is None:
            value = envelope.timestamp
        timed = timed_cache.get(value)
        if timed is None:
            timed = _timed_of(value)
        append(Outgoing(timed[0], timed[1], raw, route, None))
    return out


def _assume_role_route(envelope: _Envelope, key: str | None) -> Route:
    """``route_of_event`` of an AssumeRole about no instance: under its signer's key, and a copy
    under the key it minted (``minted_key``), so that key's calls find their lineage."""
    if not key:
        return Route((None,))
    response = envelope.responseElements
    credentials = response.credentials if response is not None else None
    child = credentials.get("accessKeyId") if isinstance(credentials, dict) else None
    if envelope.errorCode or not isinstance(child, str) or not child or child == key:
        return Route((key.encode(),))
    return Route((key.encode(), child.encode()))


def undecoded_outgoing(raw: bytes) -> Outgoing | None:
    """``envelope_outgoing`` of one record."""
    return envelope_outgoing([raw])[0]


def outgoing_of(item: Record, stats: ForwardStats) -> Outgoing | None:
    """The record ready to sort and route, or None (skipped, with the reason in ``stats``)."""
    # ~95% of records concern no instance: their envelope is enough to time and route them.
    if item.raw is not None:
        outgoing = undecoded_outgoing(item.raw)
        if outgoing is not None:
            return outgoing
    return _decoded_if_sized(item, stats)


def _decoded_if_sized(item: Record, stats: ForwardStats) -> Outgoing | None:
    if item.raw is not None and len(item.raw) > MAX_RECORD_BYTES:
        # Past what any CloudTrail record is, and past what a broker takes by default.
        _skip(stats, item.origin, f"record of {len(item.raw)} bytes exceeds {MAX_RECORD_BYTES}")
        return None
    return decoded_outgoing(item, stats)


def decoded_outgoing(item: Record, stats: ForwardStats) -> Outgoing | None:
    """``outgoing_of`` by a full decode: every relevant record, and the odd irrelevant ones."""
    record = item.data
    if item.raw is not None:
        try:
            record = decode_json(item.raw)
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
        return Outgoing(event.event_time, order_key(event), item.as_bytes(),
                        route_of_event(event, record), event)
    try:
        time_ms = event_time_of(unwrap(record))
    except ValueError:
        time_ms = None
    return Outgoing(time_ms, irrelevant_order_key(time_ms), item.as_bytes(),
                    route_of_event(None, record), None)


_order = attrgetter("order")


def _skip(stats: ForwardStats, origin: str, reason: str) -> None:
    stats.skipped_count += 1
    if len(stats.skipped) < 20:
        stats.skipped.append(f"{origin}: {reason}")


def sorted_batches(items: Iterable[Item | Lines],
                   stats: ForwardStats) -> Iterator[list[Outgoing]]:
    """Each file's records in ``order_key`` order (in chunks of at most SORT_CHUNK)."""
    batch: list[Outgoing] = []
    current_file = None
    for item in items:
        if isinstance(item, BadLine):
            stats.records += 1
            _skip(stats, item.origin, item.reason)
            continue
        if isinstance(item, Lines):
            file_name = item.origin.split("[", 1)[0]
        else:
            file_name = item.origin.rsplit(":", 1)[0].split("[", 1)[0]
        if batch and file_name != current_file:
            yield sorted(batch, key=_order)
            batch = []
        current_file = file_name
        if isinstance(item, Record):
            stats.records += 1
            if len(batch) >= SORT_CHUNK:
                yield sorted(batch, key=_order)
                batch = []
            outgoing = outgoing_of(item, stats)
            if outgoing is not None:
                batch.append(outgoing)
            continue
        # The lines of a file: most need nothing but their envelope.
        stats.records += len(item.lines)
        outgoing = _lines_outgoing(item, stats)
        while outgoing:
            if len(batch) >= SORT_CHUNK:
                yield sorted(batch, key=_order)
                batch = []
            room = SORT_CHUNK - len(batch)
            batch += outgoing[:room]
            outgoing = outgoing[room:]
    if batch:
        yield sorted(batch, key=_order)


def _lines_outgoing(item: Lines, stats: ForwardStats) -> list[Outgoing]:
    """The run's records ready to sort, in file order; the few the envelope cannot settle (and
    the skipped, with their reasons in ``stats``, in order) by the full decode."""
    outgoing = envelope_outgoing(item.lines)
    # Only the unsettled records are visited in Python (about 5%), in file order.
    unsettled = list(compress(count(), map(is_, outgoing, repeat(None))))
    if not unsettled:
        return outgoing  # type: ignore[return-value]
    numbers, lines, origin = item.numbers, item.lines, item.origin
    dropped = False
    for index in unsettled:
        decoded = _decoded_if_sized(Record(f"{origin}:{numbers[index]}", raw=lines[index]),
                                    stats)
        if decoded is None:
            dropped = True
        outgoing[index] = decoded
    if dropped:
        return [o for o in outgoing if o is not None]
    return outgoing  # type: ignore[return-value]


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
    # key → its partition: a trail's keys recur (an envelope-routed record's key is one bytes
    # object per key, its hash computed once). Cleared when large.
    where: dict[bytes, int] = {}
    for batch in batches:
        if partitions == 1:  # every record once, in order
            batcher.extend(0, [o.payload for o in batch], [o.time_ms for o in batch])
            yield from batcher.closed()
            continue
        if len(where) > _CACHED:
            where.clear()
        # Each partition's records in the batch's order (the order across partitions is no
        # one's: the worker reads each partition alone).
        placed: dict[int, tuple[list[bytes], list[int | None]]] = {}
        for outgoing in batch:
            route = outgoing.route
            keys = route.keys
            if len(keys) == 1 and not (route.broadcast or route.network_broadcast):
                key = keys[0]
                if key is not None:  # most records
                    partition = where.get(key)
                    if partition is None:
                        partition = where[key] = partition_for(key, partitions)
                    here = placed.get(partition)
                    if here is None:
                        here = placed[partition] = ([], [])
                    here[0].append(outgoing.payload)
                    here[1].append(outgoing.time_ms)
                    continue
            targets: Iterable[int] = sorted(partitions_of(route, partitions))
            if not targets:
                targets = (spread % partitions,)
                spread += 1
            for partition in targets:
                here = placed.get(partition)
                if here is None:
                    here = placed[partition] = ([], [])
                here[0].append(outgoing.payload)
                here[1].append(outgoing.time_ms)
        for partition, (payloads, times) in placed.items():
            batcher.extend(partition, payloads, times)
        yield from batcher.closed()
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

    # The loop makes many short-lived objects and few cycles: at the collector's default
    # thresholds (700 allocations) it spent about a tenth of its time collecting. Restored after.
    thresholds = gc.get_threshold()
    gc.set_threshold(_GC_THRESHOLD, *thresholds[1:])
    try:
        _produce_all(producer, messages(counted(sorted_batches(items, stats)), partitions,
                                        batch_records), topic, delivered, stats)
    finally:
        gc.set_threshold(*thresholds)
    remaining = producer.flush(120)
    if remaining:
        stats.failed += remaining
        stats.first_failure = stats.first_failure or f"{remaining} messages not delivered in 120 s"
    return stats


def _produce_all(producer: Producer, outgoing: Iterable[Message], topic: str, delivered,
                 stats: ForwardStats) -> None:
    for message in outgoing:
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
