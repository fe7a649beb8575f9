"""Batched forwarding: the worker rebuilds, on each partition, the messages one-per-record
forwarding would have put there, and replay reads batches as it reads single records."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from streams.core.records import ApiCall, MalformedRecord, decode_record, may_matter
from streams.core.timerange import TimeRange
from streams.kafka.batches import (
    BATCH_BYTES,
    BATCH_FORMAT,
    BATCH_HEADER,
    BATCH_SPAN_MS,
    BATCHED,
    NETWORK_ONLY_HEADER,
    Batcher,
    Message,
)
from streams.kafka.forwarder import ForwardStats, messages, sorted_batches
from streams.kafka.reader import CopyMerger, TopicStats
from streams.kafka.routing import (
    copies_on,
    murmur2,
    partition_for,
    route_of_event,
)
from streams.offline.run import RunStats, collect_events
from streams.sources.files import Record, iter_items

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def scenario_files() -> list[str]:
    return sorted(str(p / "records.jsonl") for p in SCENARIOS.iterdir()
                  if (p / "records.jsonl").exists())


def forwarded(paths: list[str], partitions: int, batch_records: int) -> list[Message]:
    return list(messages(sorted_batches(iter_items(paths), ForwardStats()), partitions,
                         batch_records))


def test_murmur2_is_kafkas():
    rng = random.Random(11)
    keys = [b"", b"a", b"21", b"foobar", b"i-0123456789abcdef0"]
    keys += [rng.randbytes(rng.randrange(1, 40)) for _ in range(500)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key
    assert {partition_for(k, 7) for k in keys} == set(range(7))


def about_instances(raw: bytes):
    """(event, record), or None for a record skipped or dead-lettered in either format."""
    try:
        event, record = decode_record(raw)
    except MalformedRecord:
        return None
    return None if event is None else (event, record)


def single_copies(single: list[Message], partitions: int) -> Counter:
    """(partition, key, value, network only) of every message about instances."""
    copies = Counter()
    for m in single:
        if about_instances(m.value) is None:
            continue
        partition = m.partition if m.partition is not None else partition_for(m.key, partitions)
        copies[(partition, m.key, m.value, bool(m.headers))] += 1
    return copies


def rebuilt_copies(batched: list[Message], partitions: int) -> Counter:
    """The same, as the worker rebuilds them from the batches (streams/app/wiring.py)."""
    copies = Counter()
    for m in batched:
        assert dict(m.headers) == {BATCH_HEADER: BATCH_FORMAT} and m.key is None
        for line in m.value.split(b"\n"):
            decoded = about_instances(line)
            if decoded is None:
                continue
            for key, network_only in copies_on(route_of_event(*decoded), m.partition,
                                               partitions):
                copies[(m.partition, key, line, network_only)] += 1
    return copies


@pytest.mark.parametrize("partitions", [1, 2, 3, 8])
def test_the_worker_rebuilds_what_one_per_record_forwarding_sends(partitions):
    paths = scenario_files()
    single = forwarded(paths, partitions, 1)
    batched = forwarded(paths, partitions, 500)
    expected = single_copies(single, partitions)
    assert sum(expected.values()) > 100
    # Address changes and network-only copies are among them: the hard cases.
    assert any(network_only for (_, _, _, network_only) in expected)
    assert rebuilt_copies(batched, partitions) == expected
    assert len(batched) < len(single)


def test_each_partition_keeps_the_record_order():
    paths = scenario_files()
    single = forwarded(paths, 3, 1)
    batched = forwarded(paths, 3, 7)  # small batches: many of them
    for partition in range(3):
        want = [m.value for m in single
                if (m.partition if m.partition is not None
                    else partition_for(m.key or b"", 3)) == partition
                and m.key is not None and not m.headers]
        got = [line for m in batched if m.partition == partition
               for line in m.value.split(b"\n")]
        # Every keyed record of the partition, in the same order (broadcast and keyless
        # records are in the batches too, between them).
        positions = [got.index(v) for v in dict.fromkeys(want)]
        assert positions == sorted(positions)


def record(seconds: int, padding: int = 0, name: str = "GetCallerIdentity") -> bytes:
    return msgspec.json.encode({
        "eventVersion": "1.08", "eventName": name, "eventSource": "sts.amazonaws.com",
        "eventTime": f"2024-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}Z",
        "eventID": f"e-{seconds}-{padding}", "padding": "x" * padding,
        "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAEXAMPLE"}})


def batches_of(raws: list[bytes], batch_records: int = 500) -> list[Message]:
    items = [Record(f"f.jsonl:{n}", raw=raw) for n, raw in enumerate(raws, start=1)]
    return list(messages(sorted_batches(items, ForwardStats()), 1, batch_records))


def test_batches_close_at_their_count_size_and_time_span():
    assert [len(m.value.split(b"\n")) for m in batches_of([record(s) for s in range(10)], 4)] \
        == [4, 4, 2]
    big = batches_of([record(s, padding=300_000) for s in range(10)])
    assert all(len(m.value) <= BATCH_BYTES for m in big) and len(big) == 5  # two a batch
    spread = batches_of([record(s) for s in range(0, 600, 20)])  # 10 minutes of records
    for m in spread:
        times = [msgspec.json.decode(line)["eventTime"] for line in m.value.split(b"\n")]
        first, last = (int(t[14:16]) * 60 + int(t[17:19]) for t in (times[0], times[-1]))
        assert last - first <= BATCH_SPAN_MS / 1000
        assert m.timestamp == 1704067200000 + first * 1000  # its earliest record
    assert len(spread) == 8  # four records a minute apart, inclusive


def _batches_one_by_one(runs, max_records, max_bytes, span):
    """Batcher's rule stated one record at a time (what ``Batcher.extend`` did before it cut
    runs by bisection): close before a record when the batch holds max_records, the record
    would take it past max_bytes, or its time is more than span from the batch's earliest or
    latest."""
    open_: dict = {}
    out = []
    for partition, payloads, times in runs:
        lines, size, low, high = open_.get(partition, ([], 0, None, None))
        for payload, time_ms in zip(payloads, times, strict=True):
            payload = payload.replace(b"\n", b" ")
            if lines and (len(lines) >= max_records or size + len(payload) > max_bytes or (
                    time_ms is not None and low is not None
                    and (time_ms - low > span or high - time_ms > span))):
                out.append(Message(None, b"\n".join(lines), partition, low or 0, BATCHED))
                lines, size, low, high = [], 0, None, None
            lines.append(payload)
            size += len(payload) + 1
            if time_ms is not None:
                low = time_ms if low is None else min(low, time_ms)
                high = time_ms if high is None else max(high, time_ms)
        open_[partition] = (lines, size, low, high)
    for partition in sorted(open_):
        lines, _, low, _ = open_[partition]
        if lines:
            out.append(Message(None, b"\n".join(lines), partition, low or 0, BATCHED))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_the_batcher_cuts_as_the_rule_one_record_at_a_time(seed):
    rng = random.Random(seed)
    max_records, max_bytes, span = rng.choice([(1, 50, 5), (3, 40, 10), (5, 200, 30),
                                               (500, 900, 60), (4, 10_000, 1_000)])
    runs = []
    clock = rng.randrange(1000)
    for _ in range(rng.randrange(1, 12)):
        size = rng.randrange(0, 60)
        payloads = [bytes([97 + rng.randrange(3)]) * rng.choice([0, 1, rng.randrange(50), 120])
                    + (b"\n" if rng.random() < 0.05 else b"") for _ in range(size)]
        times = []
        for _ in range(size):
            clock += rng.choice([0, 0, 1, 2, 7, -3, 40, -50])
            times.append(None if rng.random() < 0.1 else clock)
        if rng.random() < 0.3:
            times.sort(key=lambda t: -1 if t is None else t)
        runs.append((rng.randrange(3), payloads, times))
    batcher = Batcher(max_records, max_bytes, span)
    got = []
    for partition, payloads, times in runs:
        batcher.extend(partition, payloads, times)
        got += batcher.closed()
    got += list(batcher.flush())
    assert got == _batches_one_by_one(runs, max_records, max_bytes, span)


def test_a_record_with_line_breaks_travels_as_one_line():
    pretty = b'{\n  "eventName": "GetCallerIdentity",\n  "eventTime": "2024-01-01T00:00:00Z"\n}'
    [m] = batches_of([pretty, record(1)])
    lines = m.value.split(b"\n")
    assert len(lines) == 2
    assert msgspec.json.decode(lines[0]) == msgspec.json.decode(pretty)


def test_replay_reads_a_batch_as_its_records():
    theft = (FIXTURES / "invictus" / "CloudTrail").glob("*.json")
    raws = [line for path in sorted(theft) for line in
            (msgspec.json.encode(r) for r in msgspec.json.decode(path.read_bytes())["Records"])]
    relevant = [r for r in raws if may_matter(r)]  # the rest is skipped undecoded
    assert len(relevant) > 10
    batched = batches_of(raws)
    single = batches_of(raws, 1)
    window = TimeRange()
    results = []
    for sent in (batched, single):
        stats = TopicStats(topic="t", partitions=1)
        folder = CopyMerger(window, stats)
        for offset, m in enumerate(sent):
            folder.add(0, offset, m.key, m.timestamp, m.value, m.headers)
        results.append(sorted(item.raw for item in folder.items()))
    assert results[0] == results[1] == sorted(relevant)
    # A range keeps a batched record by its own time, not its batch's.
    times = sorted(msgspec.json.decode(r)["eventTime"] for r in relevant)
    from streams.core.times import parse_time

    middle = parse_time(times[len(times) // 2])
    stats = TopicStats(topic="t", partitions=1)
    folder = CopyMerger(TimeRange(start_ms=middle), stats)
    for offset, m in enumerate(batched):
        folder.add(0, offset, m.key, m.timestamp, m.value, m.headers)
    kept = [msgspec.json.decode(item.raw)["eventTime"] for item in folder.items()]
    assert kept and all(parse_time(t) >= middle for t in kept)
    assert len(kept) == sum(1 for t in times if parse_time(t) >= middle)


def test_replay_folds_network_only_copies():
    stats = TopicStats(topic="t", partitions=2)
    folder = CopyMerger(TimeRange(), stats)
    value = (SCENARIOS / "eip-of-other-account" / "records.jsonl").read_bytes().splitlines()[0]
    folder.add(0, 0, b"i-1", 1, value)
    folder.add(0, 1, b"i-1", 1, value, [(NETWORK_ONLY_HEADER, b"1")])
    folder.add(1, 0, b"i-1", 1, value, [(NETWORK_ONLY_HEADER, b"1")])
    assert [item.raw for item in folder.items()] == [value]


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: Path(p).parent.name)
def test_the_forwarder_sends_records_in_the_order_detect_judges_them(path):
    # Each partition's records reach the worker in the forwarder's order: it must be detect's,
    # same-millisecond records (an instance stopping itself beside a call) included.
    sent = [o.event for batch in sorted_batches(iter_items([path]), ForwardStats())
            for o in batch if o.event is not None]
    # A derived key's calls carry no instance id: the forwarder sends them under their key,
    # and the worker there re-keys them (key lineage); every other event it knows.
    judged = [e for e in collect_events(iter_items([path]), RunStats())
              if not (isinstance(e, ApiCall) and e.is_derived_session)]
    assert [(e.event_id, e.event_time) for e in sent] == \
        [(e.event_id, e.event_time) for e in judged]
