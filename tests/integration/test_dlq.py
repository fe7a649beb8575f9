"""`exfilguard dlq` on the real broker: the dead letters grouped by reason, and a re-drive once
the cause is mended that completes the findings and sends nothing twice on a second run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from test_lifecycle import issuance, theft, write
from test_pipeline import read_findings

FAULTS = Path(__file__).parent / "faults"  # its sitecustomize injects the faults
FAILING = [f"theft-{n:04d}" for n in range(5, 10)]


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-offsets"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
    finally:
        consumer.close()


def dlq_groups(d) -> dict[str, dict]:
    listed = d.exfilguard("dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr.decode()
    return {g["reason"]: g for g in map(json.loads, listed.stdout.splitlines())}


def wait_for_dead_letters(d, count: int, timeout: float = 60) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    groups: dict[str, dict] = {}
    while time.monotonic() < deadline:
        groups = dlq_groups(d)
        if sum(g["count"] for g in groups.values()) >= count:
            return groups
        time.sleep(1)
    raise AssertionError(f"{count} dead letters expected, got {groups}")


def counts_reach(d, count: int, timeout: float = 90) -> list[int]:
    deadline = time.monotonic() + timeout
    counts: list[int] = []
    while time.monotonic() < deadline and counts != [count]:
        counts = [f["service"]["count"] for f in read_findings(d, 1)]
    return counts


def test_dead_letters_are_listed_by_reason_and_redriven_once(deployment, tmp_path):
    bug = tmp_path / "bug"
    bug.touch()
    d = deployment(partitions=2, EXFILGUARD_TEST_FAIL_FLAG=str(bug),
                   EXFILGUARD_TEST_FAIL_EVENT_IDS=",".join(FAILING),
                   PYTHONPATH=os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")]))
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 0\n")
    worker = d.start_worker(config=str(config))
    bootstrap = d.env["EXFILGUARD_BOOTSTRAP_SERVERS"]
    assert d.exfilguard("forward", write(tmp_path / "a.jsonl",
                                         [issuance()] + [theft(n) for n in range(20)])
                        ).returncode == 0
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(d.env["EXFILGUARD_TOPIC_INPUT"], value=b"", partition=0)
    producer.flush(30)
    groups = wait_for_dead_letters(d, 6)
    assert {reason: g["count"] for reason, g in groups.items()} == {
        "error: RuntimeError": 5, "malformed: empty record": 1}
    assert all(g["examples"] and g["redriven"] == 0 for g in groups.values())
    assert groups["error: RuntimeError"]["examples"][0]["reason"].startswith(
        "error: RuntimeError: injected fault on theft-")
    assert "6 record(s) in" in d.exfilguard("dlq", "list").stdout.decode()
    assert counts_reach(d, 15) == [15]

    bug.unlink()  # the cause is mended
    before = end_offsets(bootstrap, d.env["EXFILGUARD_TOPIC_INPUT"], 2)
    first = d.exfilguard("dlq", "redrive", "--reason", "error:")
    assert first.returncode == 0, first.stderr.decode()
    assert "re-drove 5 record(s)" in first.stderr.decode()
    assert counts_reach(d, 20) == [20]  # every call counted, once

    after = end_offsets(bootstrap, d.env["EXFILGUARD_TOPIC_INPUT"], 2)
    second = d.exfilguard("dlq", "redrive", "--reason", "error:")
    assert second.returncode == 0, second.stderr.decode()
    assert "re-drove 0 record(s)" in second.stderr.decode()
    assert "5 already re-driven" in second.stderr.decode()
    assert end_offsets(bootstrap, d.env["EXFILGUARD_TOPIC_INPUT"], 2) == after  # nothing sent
    assert sum(after) - sum(before) == 5
    assert dlq_groups(d)["error: RuntimeError"]["redriven"] == 5
    assert worker.poll() is None


def test_redrive_needs_a_choice_and_a_readable_range(deployment):
    d = deployment(partitions=1)
    nothing = d.exfilguard("dlq", "redrive")
    assert nothing.returncode != 0 and b"--reason" in nothing.stderr
    assert b"Traceback" not in nothing.stderr
    bad = d.exfilguard("dlq", "redrive", "--offsets", "zero:1-2")
    assert bad.returncode != 0 and b"PARTITION:FIRST-LAST" in bad.stderr
