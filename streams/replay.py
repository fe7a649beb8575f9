"""Replay: the detection core over a time range of a topic (or over files), with state of its own.

A topic range is read with a group-less consumer: partitions are ``assign``-ed at the offsets
found by time, nothing is committed and no table or changelog is made, so the live worker's
state and offsets are never touched. The records read are then detected exactly as
``exfilguard detect`` detects files (``streams.offline``): sorted by event time, one detector,
flushed at the end. The forwarder copies an account's address changes to every partition; those
copies are folded back into one record, so a range gives the findings its files give.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from streams.core.awsranges import AwsIpRanges
from streams.core.config import DetectionConfig
from streams.core.detector import Detector
from streams.core.findings import IpEnricher
from streams.core.records import Event, event_time_of, may_matter, unwrap
from streams.core.times import BadTime, format_time, parse_time
from streams.errors import UserError
from streams.inputs import Item, Record
from streams.offline import RunStats, collect_events, run_events
from streams.routing import BATCH_FORMAT, BATCH_HEADER, BATCH_SPAN_MS, NETWORK_ONLY_HEADER
from streams.settings import KafkaSettings

_decoder = msgspec.json.Decoder()
IDLE_TIMEOUT_S = 60.0  # no message for this long while offsets remain to be read: give up

# librdkafka logs every refused connection; the one-line error says it instead.
_QUIET = logging.getLogger("exfilguard.replay.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


# -- time ranges ---------------------------------------------------------------------------------

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
        raise UserError(f"{option} {value!r} is not an ISO 8601 time such as "
                        "2023-07-10T11:00:00Z") from None


def parse_range(start: str | None, end: str | None) -> TimeRange:
    window = TimeRange(parse_moment(start, "--start") if start is not None else None,
                       parse_moment(end, "--end") if end is not None else None)
    if (window.start_ms is not None and window.end_ms is not None
            and window.start_ms >= window.end_ms):
        raise UserError(f"--start {start} is not before --end {end}: the range "
                        f"{window.describe()} is empty")
    return window


# -- reading a topic range -----------------------------------------------------------------------

@dataclass
class TopicStats:
    topic: str = ""
    partitions: int = 0
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition → [from, to)
    messages: int = 0  # read within the offsets
    outside: int = 0  # read, but timestamped outside the range
    copies: int = 0  # per-partition copies of one record folded into it
    skipped: int = 0  # could not matter to detection: counted, not decoded

    def describe(self) -> str:
        return (f"{self.topic}: {self.partitions} partition(s), {self.messages} messages read, "
                f"{self.outside} outside the range, {self.copies} partition copies folded")


@dataclass
class _Held:
    """One distinct record value read: its first place, and its copies per (partition, key)."""

    timestamp: int
    origin: tuple[int, int, int]  # partition, offset, line in a batch (0: not a batch)
    copies: dict[tuple[int, bytes | None], int] = field(default_factory=dict)


def consumer_config(settings: KafkaSettings) -> dict[str, Any]:
    """A consumer in no group that matters: partitions are assigned, nothing is committed."""
    return {
        **settings.confluent(),
        # Never the worker's group (settings.app_id): assign() joins no group, and with
        # auto-commit off this throwaway id never reaches the broker.
        "group.id": f"exfilguard-replay-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "logger": _QUIET,
    }


def find_offsets(consumer: Any, topic: str, partitions: list[int], window: TimeRange,
                 max_delay_ms: int | None, timeout: float = 30.0) -> dict[int, tuple[int, int]]:
    """Per partition, the offsets [from, to) that hold the range.

    ``from`` is the first offset timestamped at or after the start less ``BATCH_SPAN_MS`` (a
    batch is timestamped with its earliest record and spans at most that: every earlier offset
    holds only earlier records). Records are forwarded roughly, not strictly, in time order, so
    ``to`` is the first offset timestamped at or after end + max_delay (the high watermark if
    none, or if max_delay is None); records beyond it are not read, whatever their timestamp.
    """
    from confluent_kafka import KafkaException, TopicPartition

    bounds: dict[int, tuple[int, int]] = {}
    try:
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                 for p in partitions}
        starts = {p: marks[p][0] for p in partitions}
        if window.start_ms is not None:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, max(0, window.start_ms - BATCH_SPAN_MS))
                 for p in partitions], timeout=timeout)
            starts = {tp.partition: (tp.offset if tp.offset >= 0 else marks[tp.partition][1])
                      for tp in found}
        ends = {p: marks[p][1] for p in partitions}
        if window.end_ms is not None and max_delay_ms is not None:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, window.end_ms + max_delay_ms) for p in partitions],
                timeout=timeout)
            ends = {tp.partition: (tp.offset if tp.offset >= 0 else marks[tp.partition][1])
                    for tp in found}
    except KafkaException as exc:
        raise UserError(f"cannot find the offsets of {topic} by time: {exc.args[0].str()}"
                        ) from None
    for p in partitions:
        low, high = marks[p]
        start = max(starts[p], low)
        end = min(max(ends[p], start), high)
        bounds[p] = (start, end)
    return bounds


def read_topic(settings: KafkaSettings, topic: str, window: TimeRange,
               max_delay_ms: int | None = 3_600_000,
               progress: Callable[[int], Any] | None = None,
               idle_timeout: float = IDLE_TIMEOUT_S) -> tuple[list[Item], TopicStats]:
    """The records of a topic range, one per distinct record, ordered by (time, bytes).

    Copies of one value on several partitions under one key (an address change the forwarder
    sent to every partition) or under several keys (a stop/start naming several instances) are
    one record; a value forwarded twice is in one partition twice and stays twice.
    ``progress`` makes a bar (tqdm's interface) from the number of offsets to read.
    """
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    from streams.kafka_admin import metadata

    _TRANSIENT = (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)  # noqa: N806
    meta = metadata(settings)
    described = meta.topics.get(topic)
    if described is None or described.error is not None:
        raise UserError(f"topic {topic} does not exist at {settings.bootstrap_servers}")
    stats = TopicStats(topic=topic, partitions=len(described.partitions))
    consumer = Consumer(consumer_config(settings))
    folder = Folder(window, stats)
    bar = None
    try:
        bounds = find_offsets(consumer, topic, sorted(described.partitions), window,
                              max_delay_ms)
        stats.offsets = bounds
        todo = {p: end for p, (start, end) in bounds.items() if start < end}
        if progress is not None:
            bar = progress(sum(end - start for start, end in bounds.values()))
        if todo:
            consumer.assign([TopicPartition(topic, p, bounds[p][0]) for p in sorted(todo)])
        idle_since = time.monotonic()
        while todo:
            messages = consumer.consume(num_messages=1000, timeout=1.0)
            if not messages:
                if time.monotonic() - idle_since > idle_timeout:
                    left = ", ".join(f"{p}" for p in sorted(todo))
                    raise UserError(f"reading {topic}: no message for {idle_timeout:.0f} s "
                                    f"with offsets left on partition(s) {left}")
                continue
            idle_since = time.monotonic()
            read = 0
            for message in messages:
                error = message.error()
                partition = message.partition()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        _done(consumer, todo, topic, partition)
                        continue
                    if error.retriable() or error.code() in _TRANSIENT:
                        continue  # librdkafka reconnects; the idle timeout bounds the wait
                    raise UserError(f"reading {topic}: {error.str()}")
                if partition not in todo:
                    continue
                offset = message.offset()
                if offset >= todo[partition]:
                    _done(consumer, todo, topic, partition)
                    continue
                read += 1
                stats.messages += 1
                folder.add(partition, offset, message.key(), message.timestamp()[1],
                           message.value(), message.headers())
                if offset >= todo[partition] - 1:
                    _done(consumer, todo, topic, partition)
            if bar is not None and read:
                bar.update(read)
    except KafkaException as exc:
        raise UserError(f"reading {topic}: {exc.args[0].str()}") from None
    finally:
        if bar is not None:
            bar.close()
        consumer.close()
    return folder.items(), stats


def _done(consumer: Any, todo: dict[int, int], topic: str, partition: int) -> None:
    from confluent_kafka import TopicPartition

    if todo.pop(partition, None) is not None:
        consumer.pause([TopicPartition(topic, partition)])


def _event_time(raw: bytes, fallback: int) -> int:
    """A batched record's eventTime (its batch's timestamp when it has none: it is rejected
    later with its reason)."""
    if not may_matter(raw):
        return fallback  # skipped undecoded, whatever its time
    try:
        record = unwrap(_decoder.decode(raw))
        return event_time_of(record) if isinstance(record, dict) else fallback
    except (ValueError, RecursionError):
        return fallback


class Folder:
    """Holds the distinct record values read and folds partition copies into one record."""

    def __init__(self, window: TimeRange, stats: TopicStats) -> None:
        self.window = window
        self.stats = stats
        self.held: dict[bytes, _Held] = {}

    def add(self, partition: int, offset: int, key: bytes | None, timestamp: int,
            value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        marks = dict(headers or ())
        if NETWORK_ONLY_HEADER in marks:
            self.stats.copies += 1  # the same record is on its instance's partition
            return
        if marks.get(BATCH_HEADER) != BATCH_FORMAT:
            self._add(partition, (offset, 0), key, timestamp, value or b"")
            return
        for line, raw in enumerate((value or b"").split(b"\n"), start=1):
            if raw.strip():
                # A batch is timestamped with its earliest record: each record has its own.
                self._add(partition, (offset, line), None, _event_time(raw, timestamp), raw)

    def _add(self, partition: int, place: tuple[int, int], key: bytes | None, timestamp: int,
             value: bytes) -> None:
        if timestamp not in self.window:
            self.stats.outside += 1
            return
        if value.strip() and not may_matter(value):
            self.stats.skipped += 1  # as the stream does: never decoded, cannot make a finding
            return
        entry = self.held.get(value)
        origin = (partition, *place)
        if entry is None:
            entry = self.held[value] = _Held(timestamp, origin)
        else:
            entry.origin = min(entry.origin, origin)  # whatever the read order
        where = (partition, key)
        entry.copies[where] = entry.copies.get(where, 0) + 1

    def items(self) -> list[Item]:
        """One record per distinct value (as many as its most copies under one partition and
        key), ordered by (timestamp, bytes): the same for any partitioning of the same records."""
        items: list[Item] = []
        topic = self.stats.topic
        for value, entry in sorted(self.held.items(), key=lambda kv: (kv[1].timestamp, kv[0])):
            repeats = max(entry.copies.values())
            self.stats.copies += sum(entry.copies.values()) - repeats
            partition, offset, line = entry.origin
            origin = f"{topic}/{partition}@{offset}" + (f"#{line}" if line else "")
            items += [Record(origin, raw=value)] * repeats
        return items


# -- detection -----------------------------------------------------------------------------------

@dataclass
class Run:
    """One detection over a set of events: the findings, and the detector that holds them."""

    findings: list[dict[str, Any]]
    detector: Detector

    def aggregate(self, finding_id: str) -> dict[str, Any]:
        return self.detector.state.findings[finding_id]


def load_events(items: Iterable[Item], window: TimeRange, stats: RunStats) -> list[Event]:
    """Decode and sort the records as ``detect`` does, keeping those in the range."""
    events = collect_events(items, stats)
    if window.bounded:
        events = [e for e in events if e.event_time in window]
        stats.relevant = len(events)
    return events


def run_detection(events: list[Event], config: DetectionConfig, aws: AwsIpRanges,
                  enrich: IpEnricher | None = None) -> Run:
    """``streams.offline.detect`` over events sorted by ``order_key`` (``load_events`` sorts
    them), so several configs can share one decoding of the input."""
    detector = run_events(events, config, aws, enrich)
    return Run(detector.findings(), detector)


# -- writing findings ----------------------------------------------------------------------------

def write_lines(path: str, payload: bytes) -> None:
    import sys

    if path == "-":
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
        return
    try:
        with open(path, "wb") as out:
            out.write(payload)
    except OSError as exc:
        raise UserError(f"--output {path}: cannot write ({exc.strerror or exc})") from None


def ensure_output_topic(settings: KafkaSettings, topic: str) -> None:
    """Create the findings output topic (compacted, like the findings topic) if missing."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    from streams.kafka_admin import FINDINGS_CONFIG, admin, metadata

    existing = metadata(settings).topics.get(topic)
    if existing is not None and existing.error is None:
        return
    client = admin(settings)
    new = NewTopic(topic, num_partitions=settings.partitions,
                   replication_factor=settings.replication_factor, config=FINDINGS_CONFIG)
    for name, future in client.create_topics([new], request_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise UserError(f"cannot create topic {name}: {exc.args[0].str()}") from None


def produce_findings(settings: KafkaSettings, topic: str, findings: list[dict[str, Any]],
                     timeout: float = 120.0) -> int:
    """Findings keyed by id, encoded as the worker writes them; every delivery checked."""
    from confluent_kafka import KafkaException, Producer

    from streams.avro import finding_codec

    ensure_output_topic(settings, topic)
    codec = finding_codec(settings, topic)
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            failures.append(err.str())
        else:
            delivered += 1

    producer = Producer({**settings.confluent(), "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": int(timeout * 1000), "logger": _QUIET})
    for finding in findings:
        while True:
            try:
                producer.produce(topic, key=finding["id"].encode(), value=codec.encode(finding),
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.5)
            except KafkaException as exc:
                raise UserError(f"producing to {topic}: {exc.args[0].str()}") from None
        producer.poll(0)
    remaining = producer.flush(timeout)
    if failures or remaining:
        reason = failures[0] if failures else f"{remaining} not delivered in {timeout:.0f} s"
        raise UserError(f"{len(failures) + remaining} of {len(findings)} findings not delivered "
                        f"to {topic}: {reason}", exit_code=1)
    return delivered
