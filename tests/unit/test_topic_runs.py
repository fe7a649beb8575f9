"""Replay of a topic in bounded memory: the values that may matter are held a run at a time,
full runs sorted to temporary files and merged, and the records come out as one run holding
everything gives them, whatever the order of the offsets and wherever a value's copies land."""

from __future__ import annotations

import random

import pytest

from streams.core.timerange import TimeRange
from streams.kafka.batches import NETWORK_ONLY_HEADER
from streams.kafka.reader import CopyMerger, TopicStats


def record(n: int) -> bytes:
    # May matter (an instance role's call) and carries its own time.
    return (b'{"eventName": "DescribeInstances", "eventTime": "2024-03-01T00:00:%02dZ", '
            b'"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/r/i-%d"}, "n": %d}'
            % (n % 60, n % 7, n))


def messages(seed: int, values: int = 400) -> list[tuple]:
    """Each value once, forwarded twice or copied to several partitions, in a shuffled order."""
    rng = random.Random(seed)
    out = []
    for n in range(values):
        value = record(n)
        stamp = 1_700_000_000_000 + (n % 60) * 1000
        kind = rng.random()
        if kind < 0.2:  # an address change on every partition
            out += [(p, b"111122223333", stamp, value, None) for p in range(4)]
        elif kind < 0.3:  # a stop/start naming two instances: one record
            out += [(0, b"i-1", stamp, value, None), (2, b"i-2", stamp, value, None)]
        elif kind < 0.4:  # forwarded twice into its partition: two records
            out += [(1, b"i-3", stamp, value, None)] * 2
        elif kind < 0.5:  # a broadcast copy marked network-only, beside its own
            out += [(3, b"i-4", stamp, value, None),
                    (1, b"i-4", stamp, value, [(NETWORK_ONLY_HEADER, b"1")])]
        else:
            out.append((rng.randrange(4), b"i-5", stamp, value, None))
    rng.shuffle(out)
    return out


def merged(sent: list[tuple], run_values: int | None) -> tuple[list[tuple], TopicStats]:
    stats = TopicStats(topic="t", partitions=4)
    merger = CopyMerger(TimeRange(), stats, run_values)
    offsets = [0, 0, 0, 0]
    for partition, key, stamp, value, headers in sent:
        merger.add(partition, offsets[partition], key, stamp, value, headers)
        offsets[partition] += 1
    return [(item.origin, item.raw) for item in merger.iter_items()], stats


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("run_values", [1, 2, 7, 50])
def test_runs_on_disk_give_what_one_run_in_memory_gives(seed, run_values):
    sent = messages(seed)
    whole, one = merged(sent, 10**9)
    assert one.runs == 0 and one.held == len({v for _, _, _, v, _ in sent})
    bounded, stats = merged(sent, run_values)
    assert bounded == whole
    assert stats.copies == one.copies > 0
    assert stats.held <= run_values
    assert stats.runs >= len({v for _, _, _, v, _ in sent}) // run_values - 1


def test_a_value_twice_in_its_partition_stays_twice_across_runs():
    value = record(1)
    sent = [(1, b"i-3", 5, value, None), (0, b"i-9", 4, record(2), None),
            (2, b"i-8", 3, record(3), None), (1, b"i-3", 5, value, None),
            (0, b"111122223333", 5, value, None)]
    items, stats = merged(sent, 1)
    assert [raw for _, raw in items].count(value) == 2
    assert stats.runs >= 3 and stats.copies == 1


def test_the_temporary_runs_are_removed_when_the_merge_ends_or_is_left():
    sent = messages(1)
    stats = TopicStats(topic="t")
    merger = CopyMerger(TimeRange(), stats, 5)
    for offset, (partition, key, stamp, value, headers) in enumerate(sent):
        merger.add(partition, offset, key, stamp, value, headers)
    runs = list(merger.runs)
    assert runs and not any(run.closed for run in runs)
    items = merger.iter_items()
    next(items)
    items.close()  # the reader stopped early (an error downstream)
    assert all(run.closed for run in runs)


@pytest.mark.parametrize("seed", range(4))
def test_runs_merged_into_one_when_many_give_the_same(seed):
    sent = messages(seed)
    whole, one = merged(sent, 10**9)
    stats = TopicStats(topic="t", partitions=4)
    merger = CopyMerger(TimeRange(), stats, 3)
    merger.max_runs = 4
    offsets = [0, 0, 0, 0]
    for partition, key, stamp, value, headers in sent:
        merger.add(partition, offsets[partition], key, stamp, value, headers)
        offsets[partition] += 1
        assert len(merger.runs) < 4
    assert [(item.origin, item.raw) for item in merger.iter_items()] == whole
    assert stats.copies == one.copies and stats.runs > 12
