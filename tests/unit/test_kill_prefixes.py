"""At-least-once as a worker killed -9 leaves it: the core's tables are sections of one table,
so every write a record makes goes to one changelog, in order (streams/app/state.py), and a
worker restarted after a kill (its local tables removed) has a prefix of those writes: at least
those before the last commit (flushed then), maybe part of a record's. The records after the
commit come again, with their offsets. Every scenario, committed before each record and left
with every prefix of its writes from there (sampled in the longest), must give one pass's
findings, counts included (the chaos trials' "count 387 of 400" was tables kept apart)."""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import MutableMapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from streams.app.state import Section
from streams.aws.ipranges import load_aws_ranges
from streams.core.detector import Detector, DetectorState, _DueIndex
from streams.core.records import decode
from streams.core.settings import parse_config
from streams.offline.run import RunStats, collect_events
from streams.sources.files import iter_items

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cloudtrail_builders import at, call, issuance  # noqa: E402
from merged_scenarios import merged_lines  # noqa: E402

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FOLDERS = sorted(p for p in SCENARIOS.iterdir() if (p / "records.jsonl").exists())
_GONE = object()
PREFIXES_PER_COMMIT = 60  # every prefix where fewer; the longest scenario, this many at random


class LoggedTable(MutableMapping):
    """A table whose every write is logged, as its changelog would be."""

    def __init__(self, data: dict | None = None) -> None:
        self.data = dict(data or {})
        self.log: list[tuple[str, Any]] = []

    def __getitem__(self, key):
        return msgspec.json.decode(self.data[key])  # as a table gives a decoded copy

    def __setitem__(self, key, value):
        encoded = msgspec.json.encode(value)  # as the changelog holds it
        self.data[key] = encoded
        self.log.append((key, encoded))

    def __delitem__(self, key):
        del self.data[key]
        self.log.append((key, _GONE))

    def __iter__(self):
        return iter(list(self.data))

    def __len__(self):
        return len(self.data)


def restored(log: list[tuple[str, Any]], upto: int) -> LoggedTable:
    table = LoggedTable()
    for key, value in log[:upto]:
        if value is _GONE:
            table.data.pop(key, None)
        else:
            table.data[key] = value
    return table


def sections(table: MutableMapping, legacy: DetectorState | None = None) -> DetectorState:
    """The worker's layout: every core table a section of ``table``."""
    return DetectorState(**{f.name: Section(table, f.name, getattr(legacy, f.name, None))
                            for f in fields(DetectorState)})


def run(detector: Detector, events, start: int, versions: dict) -> None:
    for position, event in enumerate(events, start):
        for finding_id in detector.observe(event, position=position):
            versions[finding_id] = detector.render(finding_id)["service"]["count"]
        detector.retired.clear()


class FirstPass:
    """The killed worker's run, once: the changelog it wrote, how many writes it held before
    each record, and the counts it sent before each commit point."""

    def __init__(self, config, aws, events) -> None:
        table = LoggedTable()
        detector = Detector(config, aws, sections(table))
        versions: dict[str, int] = {}
        self.marks: list[int] = []
        self.sent: list[dict[str, int]] = []
        for position, event in enumerate(events):
            self.marks.append(len(table.log))
            self.sent.append(dict(versions))
            run(detector, [event], position, versions)
        self.marks.append(len(table.log))
        self.log = table.log
        for finding_id in list(detector.state.finding_aggregates):
            versions[finding_id] = detector.render(finding_id)["service"]["count"]
        self.counts = versions


def counts_after_kill(config, aws, events, first: FirstPass, committed: int, kept: int) -> dict:
    """Each finding's last count received after a kill that left the first ``kept`` writes of
    the changelog, the offsets committed before record ``committed``. What was sent before the
    commit was delivered (flushed then); what the killed worker sent after it may be lost, so
    only what the restarted one sends, and holds, counts."""
    versions = dict(first.sent[committed])
    detector = Detector(config, aws, sections(restored(first.log, kept)))
    run(detector, events[committed:], committed, versions)
    for finding_id in list(detector.state.finding_aggregates):
        versions[finding_id] = detector.render(finding_id)["service"]["count"]
    return versions


def kills(first: FirstPass, rng: random.Random) -> list[tuple[int, int]]:
    """(committed, writes kept) of every kill: from each commit point, every prefix of the
    changelog from there, or PREFIXES_PER_COMMIT of them at random (the first and last too)."""
    drawn = []
    for committed in range(len(first.marks) - 1):
        prefixes = range(first.marks[committed], first.marks[-1] + 1)
        if len(prefixes) > PREFIXES_PER_COMMIT:
            prefixes = sorted({prefixes[0], prefixes[-1],
                               *rng.sample(prefixes, PREFIXES_PER_COMMIT - 2)})
        drawn += [(committed, kept) for kept in prefixes]
    return drawn


def scenario(folder: Path):
    config_path = folder / "config.yaml"
    config = parse_config((yaml.safe_load(config_path.read_text()) if config_path.exists()
                           else None) or {})
    events = collect_events(iter_items([str(folder / "records.jsonl")]), RunStats())
    return config, load_aws_ranges(config), events


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_a_kill_leaving_any_prefix_of_the_changelog_changes_no_count(folder: Path):
    config, aws, events = scenario(folder)
    first = FirstPass(config, aws, events)
    once, marks = first.counts, first.marks
    drawn = kills(first, random.Random(folder.name))
    broken = []
    for committed, kept in drawn:
        again = counts_after_kill(config, aws, events, first, committed, kept)
        if again != once:
            broken.append((committed, kept, again))
    assert len(drawn) >= len(events) and marks[-1] > marks[0]
    assert not broken, (f"{len(broken)} of {len(drawn)} kills change the findings of {once}, "
                        f"e.g. (committed, writes kept, counts) {broken[:3]}")


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_state_an_earlier_version_kept_in_tables_of_their_own_goes_on_being_read(folder: Path):
    """Upgraded at any record from the layout with a table per field: the new worker reads the
    old tables where its own has no key (and never writes them), and gives one pass's counts."""
    config, aws, events = scenario(folder)
    once = FirstPass(config, aws, events).counts
    for upgraded in range(len(events) + 1):
        old = DetectorState(**{f.name: LoggedTable() for f in fields(DetectorState)})
        versions: dict[str, int] = {}
        run(Detector(config, aws, old), events[:upgraded], 0, versions)
        written = {f.name: len(getattr(old, f.name).log) for f in fields(DetectorState)}
        detector = Detector(config, aws, sections(LoggedTable(), legacy=old))
        run(detector, events[upgraded:], upgraded, versions)
        for finding_id in list(detector.state.finding_aggregates):
            versions[finding_id] = detector.render(finding_id)["service"]["count"]
        assert versions == once, f"upgraded before record {upgraded}"
        assert {f.name: len(getattr(old, f.name).log) for f in fields(DetectorState)} == written


def test_a_long_queue_drained_at_one_record_counts_each_call_once_whatever_the_kill():
    """Forty stolen calls that overtook their key's issuance wait, and are judged at the one
    record that brings it: more than the ids a finding keeps beside its count (32), so a cut
    anywhere in those writes must be told from a duplicate by the ids' table alone."""
    key, instance_id = "ASIAQUEUEDQ7XK2MZ001", "i-0aaaabbbbccccdddd"
    records = [call(event_id=f"queued-{n:02d}", time=at(minutes=1, seconds=n), access_key=key,
                    instance_id=instance_id, source_ip="45.33.32.156", delivery=None)
               for n in range(40)]
    records.append(issuance(event_id="issued", time=at(), instance_id=instance_id,
                            access_key=key))
    events = [decode(json.dumps(r).encode()) for r in records]  # as they arrive, not sorted
    config = parse_config({"finding_update_interval_seconds": 0})
    aws = load_aws_ranges(config)
    first = FirstPass(config, aws, events)
    assert list(first.counts.values()) == [40]
    broken = [kill for kill in kills(first, random.Random(7))
              if counts_after_kill(config, aws, events, first, *kill) != first.counts]
    assert not broken, f"{len(broken)} kills miscount, e.g. (committed, writes kept) {broken[:3]}"


RESENDS_PER_SCENARIO = 300
# Every scenario at once: this many kills drawn (MERGED_KILLS in the environment for more).
MERGED_RESENDS = int(os.environ.get("MERGED_KILLS", 250))


def resends_change_no_count(config, aws, events, rng: random.Random, most: int) -> None:
    """The first agent re-reads its input from its own commit and sends the instance records
    again, after those it had sent before the kill; the second agent reads those from its own
    commit, then the copies. Each (second agent's commit, records sent before the kill, first
    agent's commit) with a random prefix of the changelog, every one where there are fewer than
    ``most``, gives one pass's counts."""
    first = FirstPass(config, aws, events)
    n = len(events)
    if n ** 3 // 6 > 20 * most:  # too many to list: drawn
        points = set()
        while len(points) < most:
            sent = rng.randint(1, n)
            points.add((rng.randrange(sent), sent, rng.randint(0, sent)))
        points = sorted(points)
    else:
        points = [(c, s, r) for c in range(n) for s in range(c, n + 1) for r in range(s + 1)]
        if len(points) > most:
            points = rng.sample(points, most)
    broken = []
    for committed, sent, resent in points:
        kept = rng.randint(first.marks[committed], first.marks[sent])
        versions = dict(first.sent[committed])
        detector = Detector(config, aws, sections(restored(first.log, kept)))
        run(detector, events[committed:sent] + events[resent:], committed, versions)
        for finding_id in list(detector.state.finding_aggregates):
            versions[finding_id] = detector.render(finding_id)["service"]["count"]
        if versions != first.counts:
            broken.append((committed, sent, resent, kept, versions))
    assert not broken, (f"{len(broken)} of {len(points)} change the counts {first.counts}, "
                        f"e.g. (committed, sent, resent, kept, counts) {broken[:2]}")


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_what_a_restarted_worker_sends_again_changes_no_count(folder: Path):
    config, aws, events = scenario(folder)
    resends_change_no_count(config, aws, events, random.Random(folder.name),
                            RESENDS_PER_SCENARIO)


def merged_stream(tmp_path: Path):
    """The chaos trials' stream: every scenario at once, each its own account (re-sends in one
    scenario's records meet another's; two accounts share an allocation id, as two folders do)."""
    merged = tmp_path / "merged.jsonl"
    merged.write_bytes(b"\n".join(merged_lines()) + b"\n")
    config = parse_config({"finding_update_interval_seconds": 0})
    events = collect_events(iter_items([str(merged)]), RunStats())
    assert len(events) >= 300
    return config, load_aws_ranges(config), events


def test_a_kill_leaving_any_prefix_in_the_merged_stream_changes_no_count(tmp_path):
    config, aws, events = merged_stream(tmp_path)
    first = FirstPass(config, aws, events)
    rng = random.Random(20261204)
    drawn = []
    for _ in range(MERGED_RESENDS):
        committed = rng.randrange(len(events))
        drawn.append((committed, rng.randint(first.marks[committed], first.marks[-1])))
    broken = [kill for kill in drawn
              if counts_after_kill(config, aws, events, first, *kill) != first.counts]
    assert not broken, f"{len(broken)} kills miscount, e.g. (committed, writes kept) {broken[:3]}"


def test_what_a_restarted_worker_sends_again_in_the_merged_stream_changes_no_count(tmp_path):
    config, aws, events = merged_stream(tmp_path)
    resends_change_no_count(config, aws, events, random.Random(20261204), MERGED_RESENDS)


def test_the_due_index_finds_every_waiting_instance_whatever_prefix_of_a_save_a_kill_keeps():
    """An instance's queue is written before the index's entries, so a kill in ``save`` leaves
    the queue's new head and a prefix of the index's writes; the record read again moves the
    instance from that head to itself (or, the queue lost too, from the old one). Every prefix
    of every save, in random moves of three instances over a few buckets, must leave each
    waiting instance found at its due time (the merged stream once lost a bucket that was
    written while its place in the list was not)."""
    rng = random.Random(20261204)
    lost = []
    for trial in range(400):
        table = LoggedTable()
        due: dict[str, int] = {}
        for _ in range(rng.randint(0, 5)):  # the state before the cut save
            key = rng.choice("abc")
            index = _DueIndex(table)
            after = rng.choice([None, rng.randrange(4000)])
            index.move(key, due.get(key), after)
            index.save()
            due.pop(key, None) if after is None else due.__setitem__(key, after)
        key = rng.choice("abc")
        before, after = due.get(key), rng.choice([None, rng.randrange(4000)])
        index = _DueIndex(table)
        start = len(table.log)
        index.move(key, before, after)
        index.save()
        for kept in range(start, len(table.log) + 1):
            for queue_kept in (True, False):
                again = restored(table.log, kept)
                index = _DueIndex(again)
                index.move(key, after if queue_kept else before, after)
                index.save()
                found = set(_DueIndex(again).due(None))
                waiting = {**due, key: after} if after is not None else {
                    k: at for k, at in due.items() if k != key}
                missing = {(at, k) for k, at in waiting.items()} - found
                if missing:
                    lost.append((trial, kept - start, queue_kept, sorted(missing)))
    assert not lost, f"{len(lost)} cuts lose a waiting instance, e.g. {lost[:3]}"
