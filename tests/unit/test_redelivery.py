"""At-least-once, as a worker killed -9 lives it: its tables can be ahead of its committed
offsets, so records it had already applied come again, in order, after state that holds their
effects (and those of records after them). Every scenario must then give exactly the findings of
one pass: for each kill point m and each commit point k < m, the core sees records [0, m), then
[k, m) again, then the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams.aws.ipranges import load_aws_ranges
from streams.core.detector import Detector
from streams.core.settings import parse_config
from streams.offline.run import RunStats, collect_events
from streams.sources.files import iter_items

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FOLDERS = sorted(p for p in SCENARIOS.iterdir() if (p / "records.jsonl").exists())


def findings(config, aws, *passes) -> list[dict]:
    detector = Detector(config, aws)
    for events in passes:
        for event in events:
            detector.observe(event)
    detector.flush()
    return detector.findings()


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_records_applied_again_after_a_kill_change_no_finding(folder: Path):
    config_path = folder / "config.yaml"
    config = parse_config((yaml.safe_load(config_path.read_text()) if config_path.exists()
                           else None) or {})
    aws = load_aws_ranges(config)
    events = collect_events(iter_items([str(folder / "records.jsonl")]), RunStats())
    once = findings(config, aws, events)
    broken = []
    for killed in range(1, len(events) + 1):
        for committed in range(killed):
            again = findings(config, aws, events[:killed], events[committed:killed],
                             events[killed:])
            if again != once:
                broken.append((committed, killed))
    assert not broken, (f"{len(broken)} (commit, kill) points change the findings, "
                        f"e.g. {broken[:5]} of {len(events)} events")
