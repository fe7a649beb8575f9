"""/readyz on the real broker: a worker that has records waiting and reads none of them turns
unready, naming the partition, and ready again once it reads."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from test_lifecycle import issuance, theft, write
from test_pipeline import read_findings


def readyz(worker) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/readyz",
                                    timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(worker, status: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, body = readyz(worker)
        if got == status:
            return body
        time.sleep(1)
    raise AssertionError(f"/readyz not {status} in {timeout}s: {got} {body}")


FAULTS = Path(__file__).parent / "faults"  # its sitecustomize injects the faults


def test_a_worker_that_reads_nothing_while_records_wait_is_not_ready(deployment, tmp_path):
    held = tmp_path / "hold"
    d = deployment(partitions=1, EXFILGUARD_STALL_SECONDS="5",
                   EXFILGUARD_TEST_HOLD_FINDINGS=str(held),
                   PYTHONPATH=os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")]))
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 0\n")
    worker = d.start_worker(config=str(config))
    assert d.exfilguard("forward", write(tmp_path / "a.jsonl", [issuance(), theft(0)])
                        ).returncode == 0
    assert [f["service"]["count"] for f in read_findings(d, 1)] == [1]
    assert readyz(worker)[0] == 200
    # Sends to the findings topic that do not complete (as when the cluster takes no writes):
    # the next update waits, and the worker reads no further while records wait.
    held.touch()
    assert d.exfilguard("forward", write(tmp_path / "b.jsonl", [theft(n) for n in range(1, 301)])
                        ).returncode == 0
    body = wait_for(worker, 503)
    assert body["ready"] is False and body["stalled"], body
    assert "kafka.stall_seconds" in body["reason"]
    held.unlink()
    wait_for(worker, 200, timeout=120)
    deadline = time.monotonic() + 90
    counts = []
    while time.monotonic() < deadline and counts != [301]:
        counts = [f["service"]["count"] for f in read_findings(d, 1)]
    assert counts == [301]  # nothing lost while it stalled
    assert worker.poll() is None


def test_a_second_worker_of_the_group_turns_ready(deployment):
    # Readiness waits for the tables' changelogs to be in the consumer's metadata; read from
    # aiokafka's group snapshot, only the group's leader would ever pass (the chaos trials'
    # second worker stayed unready for 120 s). start_worker waits for /readyz 200.
    d = deployment(partitions=2)
    first = d.start_worker("w0")
    second = d.start_worker("w1")
    assert readyz(first)[0] == 200 and readyz(second)[0] == 200
