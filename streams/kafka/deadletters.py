"""The dead-letter topic read back, and its records re-driven to the input topic exactly as the
worker first saw them, each at most once: a compacted marker topic (``<dlq>-redriven``, key
``partition:offset`` of the dead letter) records what was re-driven, after its delivery.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from streams.core.records import event_time_of, unwrap
from streams.errors import UserError
from streams.kafka.admin import admin, metadata
from streams.kafka.batches import BATCHED, NETWORK_ONLY_HEADER
from streams.kafka.reader import consumer_config
from streams.kafka.settings import KafkaSettings

REASON_HEADER = "exfilguard-reason"
SOURCE_HEADER = "exfilguard-source"
# A marker is kept per dead letter re-driven: compaction keeps one per key, for good.
MARKER_CONFIG = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    source: str  # topic/partition/offset, and #line for a record of a batch
    network_only: bool
    timestamp: int

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def source_partition(self) -> int | None:
        try:
            return int(self.source.split("#", 1)[0].rsplit("/", 2)[1])
        except (IndexError, ValueError):
            return None

    @property
    def from_batch(self) -> bool:
        return "#" in self.source


def marker_topic(settings: KafkaSettings) -> str:
    return f"{settings.topic_dlq}-redriven"


def _read_all(settings: KafkaSettings, topic: str, timeout: float) -> Iterator:
    """Every message of ``topic`` up to its end as of now, partition by partition."""
    meta = metadata(settings)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        return
    consumer = Consumer(consumer_config(settings))
    try:
        todo: dict[int, int] = {}
        for partition in sorted(meta.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout)
            if high > low:
                todo[partition] = high
        if not todo:
            return
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        while todo:
            message = consumer.poll(timeout)
            if message is None:
                raise UserError(f"reading {topic}: no message in {timeout:.0f} s, though "
                                f"partitions {sorted(todo)} have more")
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    todo.pop(message.partition(), None)
                    continue
                raise UserError(f"reading {topic}: {message.error().str()}")
            if message.offset() >= todo.get(message.partition(), -1):
                todo.pop(message.partition(), None)
                continue
            yield message
            if message.offset() + 1 >= todo[message.partition()]:
                del todo[message.partition()]
    finally:
        consumer.close()


def read_dead_letters(settings: KafkaSettings, timeout: float = 30.0) -> list[DeadLetter]:
    letters = []
    for message in _read_all(settings, settings.topic_dlq, timeout):
        headers = dict(message.headers() or [])
        letters.append(DeadLetter(
            partition=message.partition(), offset=message.offset(), key=message.key(),
            value=message.value() or b"",
            reason=headers.get(REASON_HEADER, b"(no reason header)").decode(errors="replace"),
            source=headers.get(SOURCE_HEADER, b"").decode(errors="replace"),
            network_only=NETWORK_ONLY_HEADER in headers,
            timestamp=message.timestamp()[1]))
    return letters


def redriven(settings: KafkaSettings, timeout: float = 30.0) -> set[str]:
    """Positions (``partition:offset``) of the dead letters already re-driven."""
    held: dict[str, bool] = {}
    for message in _read_all(settings, marker_topic(settings), timeout):
        held[message.key().decode()] = message.value() is not None
    return {position for position, present in held.items() if present}


def parse_ranges(specs: Iterable[str]) -> list[tuple[int, int, int]]:
    """``P:A-B`` (or ``P:A``) → (partition, first, last offset), or one line naming the spec."""
    ranges = []
    for spec in specs:
        try:
            partition, span = spec.split(":", 1)
            first, _, last = span.partition("-")
            ranges.append((int(partition), int(first), int(last or first)))
        except ValueError:
            raise UserError(f"--offsets {spec!r}: expected PARTITION:FIRST-LAST, e.g. 0:10-25"
                            ) from None
        if ranges[-1][2] < ranges[-1][1]:
            raise UserError(f"--offsets {spec!r}: the last offset is before the first")
    return ranges


def select(letters: list[DeadLetter], reasons: list[str],
           ranges: list[tuple[int, int, int]]) -> list[DeadLetter]:
    """The dead letters whose reason starts with one of ``reasons`` or whose position is in one
    of ``ranges`` (either may be empty, not both)."""
    return [letter for letter in letters
            if any(letter.reason.startswith(reason) for reason in reasons)
            or any(letter.partition == p and first <= letter.offset <= last
                   for p, first, last in ranges)]


def _timestamp(letter: DeadLetter) -> int:
    """The record's event time, as the forwarder stamps it, so replay ranges still find it."""
    try:
        return event_time_of(unwrap(msgspec.json.decode(letter.value)))
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError, TypeError, AttributeError,
            RecursionError):
        return letter.timestamp


def redrive(settings: KafkaSettings, letters: list[DeadLetter], topic: str,
            timeout: float = 60.0) -> tuple[int, int]:
    """Send each letter not yet re-driven to ``topic`` on the partition it came from, with the
    headers the worker saw (a batch of one line for a record of a batch); then mark it.
    Returns (sent, skipped as already re-driven)."""
    done = redriven(settings)
    todo = [letter for letter in letters if letter.position not in done]
    if not todo:
        return 0, len(letters)
    partitions = _partitions(settings, topic)
    _ensure_marker_topic(settings)
    producer = Producer({**settings.confluent(), "acks": "all", "enable.idempotence": True})
    failures: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            failures.append(err.str())

    for letter in todo:
        partition = letter.source_partition
        if partition is None or partition >= partitions:
            raise UserError(f"dead letter {letter.position}: its source {letter.source!r} names "
                            f"no partition of {topic} ({partitions} partitions)")
        headers = list(BATCHED) if letter.from_batch else []
        if letter.network_only:
            headers.append((NETWORK_ONLY_HEADER, b"1"))
        producer.produce(topic, key=letter.key, value=letter.value, partition=partition,
                         timestamp=_timestamp(letter), headers=headers or None,
                         on_delivery=delivered)
    if producer.flush(timeout) or failures:
        raise UserError(f"re-driving to {topic}: {failures[0] if failures else 'timed out'}; "
                        "nothing was marked, run it again once the broker is reachable")
    # Marked only once delivered: a crash in between re-sends those records on the next run,
    # which the detector takes once (an offending call counts once by its event id).
    for letter in todo:
        producer.produce(marker_topic(settings), key=letter.position.encode(),
                         value=json.dumps({"source": letter.source, "to": topic}).encode(),
                         on_delivery=delivered)
    if producer.flush(timeout) or failures:
        raise UserError(f"marking re-driven records in {marker_topic(settings)}: "
                        f"{failures[0] if failures else 'timed out'}")
    return len(todo), len(letters) - len(todo)


def _partitions(settings: KafkaSettings, topic: str) -> int:
    meta = metadata(settings)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise UserError(f"topic {topic} does not exist: re-drive to the input topic a worker "
                        "reads (--topic, or kafka.topic_input)")
    return len(meta.topics[topic].partitions)


def _ensure_marker_topic(settings: KafkaSettings) -> None:
    name = marker_topic(settings)
    if name in metadata(settings).topics:
        return
    client = admin(settings)
    future = client.create_topics([NewTopic(name, num_partitions=1,
                                            replication_factor=settings.replication_factor,
                                            config=MARKER_CONFIG)])[name]
    try:
        future.result()
    except Exception as exc:
        error = exc.args[0] if exc.args else exc
        if getattr(error, "name", lambda: "")() != "TOPIC_ALREADY_EXISTS":
            raise UserError(f"cannot create topic {name}: {error}") from None
