"""What a user sees across the worker's life: throttled updates flushed on shutdown, held findings
republished after a crash, nothing lost or double counted when a worker is killed mid-stream."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_pipeline import consume_all, read_findings

ACCOUNT = "111122223333"
INSTANCE = "i-0123456789abcdef0"
KEY = "ASIALIFECYCLEKEY0001"


def issuance() -> dict:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
        "eventTime": "2024-03-01T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole", "awsRegion": "us-east-1", "sourceIPAddress": "ec2.amazonaws.com",
        "userAgent": "ec2.amazonaws.com",
        "requestParameters": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/web",
                              "roleSessionName": INSTANCE},
        "responseElements": {"credentials": {"accessKeyId": KEY,
                                             "expiration": "Mar 1, 2024, 4:00:00 PM"}},
        "eventID": "issuance-1", "recipientAccountId": ACCOUNT,
    }


def theft(n: int, ip: str = "45.33.32.156") -> dict:
    return {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole", "principalId": f"AROAEXAMPLE:{INSTANCE}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/web/{INSTANCE}",
            "accountId": ACCOUNT, "accessKeyId": KEY,
            "sessionContext": {"ec2RoleDelivery": "1.0"}},
        "eventTime": f"2024-03-01T10:{1 + n // 60:02d}:{n % 60:02d}Z",
        "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": "us-east-1",
        "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0", "eventID": f"theft-{n:04d}",
        "recipientAccountId": ACCOUNT,
    }


def write(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def versions(d) -> list[dict]:
    from streams.kafka.codec import decode_finding

    env = d.env
    messages = consume_all(env["EXFILGUARD_BOOTSTRAP_SERVERS"], env["EXFILGUARD_TOPIC_FINDINGS"])

    return [decode_finding(m.value()) for m in messages]


def test_updates_are_held_for_the_interval_and_flushed_on_shutdown(deployment, tmp_path):
    d = deployment(partitions=1)
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 900\n")
    worker = d.start_worker(config=str(config))
    first = d.exfilguard("forward", write(tmp_path / "a.jsonl", [issuance(), theft(0)]))
    assert first.returncode == 0, first.stderr
    assert [f["service"]["count"] for f in read_findings(d, 1)] == [1]  # first: at once
    more = d.exfilguard("forward", write(tmp_path / "b.jsonl", [theft(n) for n in range(1, 6)]))
    assert more.returncode == 0
    time.sleep(5)
    assert [f["service"]["count"] for f in versions(d)] == [1]  # updates held
    assert d.stop_worker(worker) == 0
    assert [f["service"]["count"] for f in versions(d)] == [1, 6]  # flushed on shutdown


@pytest.mark.parametrize("restart_on", [
    "its own disk",
    "an empty disk",  # the tables come back through the bulk restore (streams/app/restore.py)
    # Faust recovers the tables itself: its recovery ends with no partition active for a moment,
    # and the input fetched meanwhile must be read again, not dropped (streams/app/fetching.py).
    "an empty disk, no bulk restore",
])
def test_a_killed_worker_loses_nothing_and_counts_nothing_twice(deployment, tmp_path,
                                                                restart_on):
    d = deployment(partitions=2)
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 0\n")
    worker = d.start_worker(config=str(config))
    records = [issuance()] + [theft(n) for n in range(400)]
    records += [theft(1000 + n, ip="185.220.101.1") for n in range(100)]
    half = d.exfilguard("forward", write(tmp_path / "a.jsonl", records[:250]))
    assert half.returncode == 0
    time.sleep(1)
    worker.kill()  # no shutdown: offsets and tables as a crash leaves them
    worker.wait()
    rest = d.exfilguard("forward", write(tmp_path / "b.jsonl", records[250:]))
    assert rest.returncode == 0
    if restart_on.endswith("no bulk restore"):
        d.env["EXFILGUARD_BULK_RESTORE_MIN_MESSAGES"] = "0"
    restarted = d.start_worker("w0" if restart_on == "its own disk" else "w1",
                               config=str(config))
    if restart_on == "its own disk":  # RocksDB may hold writes the changelog never got
        assert "did not stop cleanly: its local tables are removed" in (
            restarted.log_path.read_text())
    expected = {("45.33.32.156", 400), ("185.220.101.1", 100)}
    deadline = time.monotonic() + 90
    got = set()
    while time.monotonic() < deadline and got != expected:
        got = {(f["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV4"],
                f["service"]["count"]) for f in read_findings(d, 2, timeout=30)}
    assert got == expected
