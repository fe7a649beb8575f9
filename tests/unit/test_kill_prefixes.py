"""At-least-once as a worker killed -9 leaves it: each table's changelog reaches Kafka on its
own, so after the kill every table holds a prefix of its writes, at least those before the last
commit (flushed then), and no two tables need hold the same number of records' writes. The
records after the commit come again, with their offsets. Every scenario, killed at each record
and committed before it, with random prefixes, must give one pass's findings, counts included
(the chaos trials' "count 387 of 400" was this)."""

from __future__ import annotations

import copy
import random
from collections.abc import MutableMapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.aws.ipranges import load_aws_ranges
from streams.core.detector import Detector, DetectorState
from streams.core.settings import parse_config
from streams.offline.run import RunStats, collect_events
from streams.sources.files import iter_items

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FOLDERS = sorted(p for p in SCENARIOS.iterdir() if (p / "records.jsonl").exists())
_GONE = object()


class LoggedTable(MutableMapping):
    """A table whose every write is logged, as its changelog would be."""

    def __init__(self, data: dict | None = None) -> None:
        self.data = dict(data or {})
        self.log: list[tuple[str, Any]] = []

    def __getitem__(self, key):
        return copy.deepcopy(self.data[key])  # as a table gives a decoded copy

    def __setitem__(self, key, value):
        self.data[key] = copy.deepcopy(value)
        self.log.append((key, copy.deepcopy(value)))

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


def run(detector: Detector, events, start: int, versions: dict) -> None:
    for position, event in enumerate(events, start):
        for finding_id in detector.observe(event, position=position):
            versions[finding_id] = detector.render(finding_id)["service"]["count"]
        detector.retired.clear()


def counts(config, aws, events, kill: tuple[int, int, random.Random] | None = None) -> dict:
    state = DetectorState(**{f.name: LoggedTable() for f in fields(DetectorState)})
    detector = Detector(config, aws, state)
    versions: dict[str, int] = {}
    if kill is None:
        run(detector, events, 0, versions)
    else:
        committed, killed, rng = kill
        run(detector, events[:committed], 0, versions)
        durable = {name: len(getattr(state, name).log) for name in durable_names(state)}
        run(detector, events[committed:killed], committed, versions)
        kept = {name: rng.randint(durable[name], len(getattr(state, name).log))
                for name in durable}
        state = DetectorState(**{name: restored(getattr(state, name).log, kept[name])
                                 for name in durable})
        detector = Detector(config, aws, state)
        run(detector, events[committed:], committed, versions)
    for finding_id in list(detector.state.finding_aggregates):
        versions[finding_id] = detector.render(finding_id)["service"]["count"]
    return versions


def durable_names(state: DetectorState) -> list[str]:
    return [f.name for f in fields(state)]


# Not yet: a kill that leaves the pending calls, the partition clock's indexes and the findings
# at different prefixes can lose or change a finding here (pending calls are judged at a later
# record's position). Strict: each passes once mended, and then must.
NOT_YET = {"key-issued-before-job"}


def _marked(folder: Path):
    if folder.name in NOT_YET:
        return pytest.param(folder, id=folder.name, marks=pytest.mark.xfail(
            strict=True, reason="tables left at different prefixes by a kill (issue 12)"))
    return pytest.param(folder, id=folder.name)


@pytest.mark.parametrize("folder", [_marked(p) for p in FOLDERS])
def test_a_kill_leaving_each_table_its_own_prefix_changes_no_count(folder: Path):
    config_path = folder / "config.yaml"
    config = parse_config((yaml.safe_load(config_path.read_text()) if config_path.exists()
                           else None) or {})
    aws = load_aws_ranges(config)
    events = collect_events(iter_items([str(folder / "records.jsonl")]), RunStats())
    once = counts(config, aws, events)
    rng = random.Random(folder.name)
    broken = []
    for killed in range(1, len(events) + 1):
        for committed in range(killed):
            for _ in range(3):
                again = counts(config, aws, events, (committed, killed, rng))
                if again != once:
                    broken.append((committed, killed, again))
    assert not broken, (f"{len(broken)} kills change the findings of {once}, "
                        f"e.g. {broken[:3]}")


def test_a_waiting_calls_count_lost_with_the_findings_table_comes_back_at_its_own_record():
    """A call that waited for its key is judged at a later record's position; after a kill that
    kept every table but the findings', its own record, read again, finds its key and counts it
    (the offending id names the call's own record, not the one that ended its wait)."""
    folder = SCENARIOS / "key-issued-before-job"
    config = parse_config({})
    aws = load_aws_ranges(config)
    events = collect_events(iter_items([str(folder / "records.jsonl")]), RunStats())
    once = counts(config, aws, events)
    state = DetectorState(**{f.name: LoggedTable() for f in fields(DetectorState)})
    run(Detector(config, aws, state), events, 0, {})  # killed after the last record, committed at 1
    state.finding_aggregates = LoggedTable()
    detector = Detector(config, aws, state)
    versions: dict[str, int] = {}
    run(detector, events[1:], 1, versions)
    assert versions == once
