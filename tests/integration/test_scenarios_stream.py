"""The stream judges the labelled scenarios as `exfilguard detect` does, byte for byte.

All scenarios with the default config run through one worker at once: each gets its own
account, instance id and elastic IP (the folders share them), and their records are merged into
one file in event-time order, as a live CloudTrail stream would deliver them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_pipeline import as_detect_gives, read_findings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from merged_scenarios import SCENARIOS, merged_lines  # noqa: E402


def merged_records(tmp_path: Path) -> Path:
    lines = merged_lines()
    path = tmp_path / "scenarios.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("batch_records", ["500", "1"], ids=["batched", "one-per-message"])
def test_scenarios_in_the_stream_match_detect_byte_for_byte(deployment, tmp_path,
                                                            batch_records):
    records = merged_records(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 0\n")
    d = deployment(partitions=3)
    worker = d.start_worker(config=str(config))
    forwarded = d.exfilguard("forward", "--config", str(config), "--batch-records",
                             batch_records, str(records))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    offline = d.exfilguard("detect", "--config", str(config), str(records))
    assert offline.returncode == 0, offline.stderr.decode()
    expected = sorted(offline.stdout.splitlines())
    assert len(expected) >= 15
    findings = read_findings(d, len(expected))
    # The stream publishes each change; the latest version of each finding must equal detect's.
    deadline_tries = 10
    streamed = sorted(as_detect_gives(f) for f in findings)
    while streamed != expected and deadline_tries:
        deadline_tries -= 1
        streamed = sorted(as_detect_gives(f)
                          for f in read_findings(d, len(expected), timeout=10))
    assert streamed == expected, f"worker log:\n{worker.log_path.read_text()[-4000:]}"


@pytest.mark.parametrize("name", ["unknown-endpoint-declared", "declared-network-stranger"])
def test_a_configured_scenario_in_the_stream_matches_detect(deployment, tmp_path, name):
    # Folders with a config of their own are not in the merged stream (their configs differ):
    # the endpoint case of issue 14 and a declared-network one, each under its config.
    folder = SCENARIOS / name
    config = tmp_path / "config.yaml"
    config.write_text((folder / "config.yaml").read_text()
                      + "\nfinding_update_interval_seconds: 0\n")
    records = folder / "records.jsonl"
    d = deployment(partitions=3)
    worker = d.start_worker(config=str(config))
    forwarded = d.exfilguard("forward", "--config", str(config), str(records))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    offline = d.exfilguard("detect", "--config", str(config), str(records))
    assert offline.returncode == 0, offline.stderr.decode()
    expected = sorted(offline.stdout.splitlines())
    assert expected
    streamed = []
    for _ in range(10):
        streamed = sorted(as_detect_gives(f)
                          for f in read_findings(d, len(expected), timeout=10))
        if streamed == expected:
            break
    assert streamed == expected, f"worker log:\n{worker.log_path.read_text()[-4000:]}"
