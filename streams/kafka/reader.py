"""Reading a time range of a topic with a group-less consumer: partitions are ``assign``-ed at
the offsets found by time, nothing is committed, and the per-partition copies the forwarder made
of one record are merged back into one, so a range gives the records its files gave."""

from __future__ import annotations

import heapq
import logging
import pickle
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from streams.core.records import decode_json, event_time_of, may_matter, unwrap
from streams.core.timerange import TimeRange
from streams.errors import UserError
from streams.kafka.admin import metadata
from streams.kafka.batches import BATCH_SPAN_MS, is_network_only, records_of
from streams.kafka.settings import KafkaSettings
from streams.sources.files import Item, Record

# Distinct values that may matter held in memory before a sorted run goes to a temporary file
# (each about a record's size, ~1.3 KB: some 40 MB).
RUN_VALUES = 30_000
MAX_RUNS = 64  # runs open at once: beyond, they are merged into one
IDLE_TIMEOUT_S = 60.0  # no message for this long while offsets remain to be read: give up

# librdkafka logs every refused connection; the one-line error says it instead.
QUIET = logging.getLogger("exfilguard.replay.librdkafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@dataclass
class TopicStats:
    topic: str = ""
    partitions: int = 0
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition → [from, to)
    messages: int = 0  # read within the offsets
    outside: int = 0  # read, but timestamped outside the range
    copies: int = 0  # per-partition copies of one record folded into it
    skipped: int = 0  # could not matter to detection: counted, not decoded
    held: int = 0  # the most distinct records held in memory at once
    runs: int = 0  # sorted runs written to temporary files

    def describe(self) -> str:
        return (f"{self.topic}: {self.partitions} partition(s), {self.messages} messages read, "
                f"{self.outside} outside the range, {self.copies} partition copies folded, "
                f"at most {self.held} records held in memory, {self.runs} sorted runs on disk")


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
        "logger": QUIET,
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
               idle_timeout: float = IDLE_TIMEOUT_S,
               run_values: int | None = None) -> tuple[Iterator[Item], TopicStats]:
    """The records of a topic range, one per distinct record, ordered by (time, bytes).

    Any order of the offsets is fine (a backfill forwarded after newer records): the values
    that may matter are held ``run_values`` at a time (``RUN_VALUES``), each full run sorted and
    written to a temporary file, and the runs merged as the items are taken, so memory is
    bounded by the run, not the range.

    Copies of one value on several partitions under one key (an address change the forwarder
    sent to every partition) or under several keys (a stop/start naming several instances) are
    one record; a value forwarded twice is in one partition twice and stays twice.
    ``progress`` makes a bar (tqdm's interface) from the number of offsets to read.
    """
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    _TRANSIENT = (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)  # noqa: N806
    meta = metadata(settings)
    described = meta.topics.get(topic)
    if described is None or described.error is not None:
        raise UserError(f"topic {topic} does not exist at {settings.bootstrap_servers}")
    stats = TopicStats(topic=topic, partitions=len(described.partitions))
    consumer = Consumer(consumer_config(settings))
    merger = CopyMerger(window, stats, run_values)
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
                merger.add(partition, offset, message.key(), message.timestamp()[1],
                           message.value(), message.headers())
                if offset >= todo[partition] - 1:
                    _done(consumer, todo, topic, partition)
            if bar is not None and read:
                bar.update(read)
    except KafkaException as exc:
        merger.close()
        raise UserError(f"reading {topic}: {exc.args[0].str()}") from None
    except BaseException:
        merger.close()
        raise
    finally:
        if bar is not None:
            bar.close()
        consumer.close()
    return merger.iter_items(), stats


class PartitionReader:
    """Reads back a range of one partition of ``topic`` on demand, with one group-less consumer
    kept for the calls, one call at a time."""

    def __init__(self, settings: KafkaSettings, topic: str,
                 idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self.settings = settings
        self.topic = topic
        self.idle_timeout = idle_timeout
        self._consumer: Any = None
        self._lock = threading.Lock()  # the worker's two agents may both ask, from two threads

    def read(self, partition: int, since_ms: int, before_offset: int
             ) -> list[tuple[int, list[tuple[str, bytes]], bytes]]:
        """(offset, headers, value) of the partition's messages before ``before_offset``, from
        the first timestamped at or after ``since_ms`` less ``BATCH_SPAN_MS``: every message
        that may hold a record of that time or later. Raises ``UserError`` on a broker error."""
        with self._lock:
            return self._read(partition, since_ms, before_offset)

    def _read(self, partition: int, since_ms: int, before_offset: int
              ) -> list[tuple[int, list[tuple[str, bytes]], bytes]]:
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer(consumer_config(self.settings))
        consumer, topic = self._consumer, self.topic
        found: list[tuple[int, list[tuple[str, bytes]], bytes]] = []
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=30)
            start = consumer.offsets_for_times(
                [TopicPartition(topic, partition, max(0, since_ms - BATCH_SPAN_MS))],
                timeout=30)[0].offset
            start = max(low, start if start >= 0 else high)
            end = min(before_offset, high)
            if start >= end:
                return found
            consumer.assign([TopicPartition(topic, partition, start)])
            idle_since = time.monotonic()
            while True:
                message = consumer.poll(1.0)
                if message is None:
                    if time.monotonic() - idle_since > self.idle_timeout:
                        raise UserError(f"reading {topic}/{partition}: no message for "
                                        f"{self.idle_timeout:.0f} s before offset {end}")
                    continue
                idle_since = time.monotonic()
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return found
                    if error.retriable():
                        continue
                    raise UserError(f"reading {topic}/{partition}: {error.str()}")
                if message.offset() >= end:
                    return found
                found.append((message.offset(), list(message.headers() or []),
                              message.value() or b""))
                if message.offset() >= end - 1:
                    return found
        except KafkaException as exc:
            raise UserError(f"reading {topic}/{partition}: {exc.args[0].str()}") from None
        finally:
            consumer.unassign()

    def close(self) -> None:
        with self._lock:
            if self._consumer is None:
                return
            self._consumer.close()
            self._consumer = None


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
        record = unwrap(decode_json(raw))
        return event_time_of(record) if isinstance(record, dict) else fallback
    except (ValueError, RecursionError):
        return fallback


class CopyMerger:
    """Holds the distinct record values read and merges their partition copies into one record.

    At most ``run_values`` values are held in memory: a full run is sorted and written to a
    temporary file (pickled entries, read back only by this process), and ``iter_items`` merges
    the runs, folding the copies of one value that landed in different runs."""

    def __init__(self, window: TimeRange, stats: TopicStats,
                 run_values: int | None = None) -> None:
        self.window = window
        self.stats = stats
        self.held: dict[bytes, _Held] = {}
        self.run_values = run_values or RUN_VALUES
        self.runs: list[Any] = []  # temporary files, each a sorted run
        self.max_runs = MAX_RUNS

    def add(self, partition: int, offset: int, key: bytes | None, timestamp: int,
            value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        if is_network_only(headers):
            self.stats.copies += 1  # the same record is on its instance's partition
            return
        for line, raw in records_of(value or b"", headers):
            if line is None:
                self._add(partition, (offset, 0), key, timestamp, raw)
            else:
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
            if len(self.held) >= self.run_values:
                self._spill()
            entry = self.held[value] = _Held(timestamp, origin)
            self.stats.held = max(self.stats.held, len(self.held))
        else:
            entry.origin = min(entry.origin, origin)  # whatever the read order
        where = (partition, key)
        entry.copies[where] = entry.copies.get(where, 0) + 1

    def _sorted(self) -> list[tuple[int, bytes, _Held]]:
        held = sorted(((e.timestamp, v, e) for v, e in self.held.items()),
                      key=lambda t: (t[0], t[1]))
        self.held = {}
        return held

    def _spill(self) -> None:
        run = tempfile.TemporaryFile(prefix="exfilguard-replay-")
        for timestamp, value, entry in self._sorted():
            pickle.dump((timestamp, value, entry.origin, entry.copies), run,
                        protocol=pickle.HIGHEST_PROTOCOL)
        run.seek(0)
        self.runs.append(run)
        self.stats.runs += 1
        if len(self.runs) >= self.max_runs:
            self._compact()

    @staticmethod
    def _read_run(run: Any) -> Iterator[tuple[int, bytes, _Held]]:
        while True:
            try:
                timestamp, value, origin, copies = pickle.load(run)
            except EOFError:
                return
            yield timestamp, value, _Held(timestamp, origin, copies)

    def _merged(self, runs: list[Iterator[tuple[int, bytes, _Held]]]
                ) -> Iterator[tuple[int, bytes, _Held]]:
        """The runs' entries in (timestamp, bytes) order, a value's entries from several runs
        folded into one with all its copies."""
        current: tuple[int, bytes, _Held] | None = None
        for timestamp, value, entry in heapq.merge(*runs, key=lambda t: (t[0], t[1])):
            if current is not None and (timestamp, value) == current[:2]:
                held = current[2]
                held.origin = min(held.origin, entry.origin)
                for where, count in entry.copies.items():
                    held.copies[where] = held.copies.get(where, 0) + count
                continue
            if current is not None:
                yield current
            current = (timestamp, value, entry)
        if current is not None:
            yield current

    def _compact(self) -> None:
        """Many runs (a range of some hundred million records that may matter): merged into
        one, so the open temporary files stay few."""
        run = tempfile.TemporaryFile(prefix="exfilguard-replay-")
        for timestamp, value, entry in self._merged([self._read_run(r) for r in self.runs]):
            pickle.dump((timestamp, value, entry.origin, entry.copies), run,
                        protocol=pickle.HIGHEST_PROTOCOL)
        run.seek(0)
        self.close()
        self.runs = [run]

    def iter_items(self) -> Iterator[Item]:
        """One record per distinct value (as many as its most copies under one partition and
        key), ordered by (timestamp, bytes): the same for any partitioning of the same records."""
        topic = self.stats.topic
        runs = [self._read_run(run) for run in self.runs] + [iter(self._sorted())]
        try:
            for _, value, held in self._merged(runs):
                repeats = max(held.copies.values())
                self.stats.copies += sum(held.copies.values()) - repeats
                partition, offset, line = held.origin
                origin = f"{topic}/{partition}@{offset}" + (f"#{line}" if line else "")
                yield from [Record(origin, raw=value)] * repeats
        finally:
            self.close()

    def items(self) -> list[Item]:
        return list(self.iter_items())

    def close(self) -> None:
        for run in self.runs:
            run.close()
        self.runs = []
