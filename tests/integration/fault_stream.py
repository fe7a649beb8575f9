"""A stream of scenarios to break things under (the cluster test, the chaos trials).

Not a test module: a helper. The stream is every labelled scenario (test_scenarios_stream) then
one key stolen and used 500 times from two addresses (test_lifecycle), so the counts are worth
checking; what must arrive is what ``exfilguard detect`` finds in the same records.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

from conftest import EXFILGUARD
from test_lifecycle import issuance, theft
from test_pipeline import as_detect_gives, read_findings
from test_scenarios_stream import merged_records

CONFIG = "finding_update_interval_seconds: 0\n"


def stream_lines(folder: Path) -> list[bytes]:
    lines = merged_records(folder).read_bytes().splitlines()
    thefts = [issuance()] + [theft(n) for n in range(400)]
    thefts += [theft(1000 + n, ip="185.220.101.1") for n in range(100)]
    # After the scenarios, in the order test_scenarios_stream gives them (the pending rule's
    # grace runs on each partition's clock, so what follows a scenario matters).
    records = lines + [json.dumps(record).encode() for record in thefts]
    latest = max(json.loads(line)["eventTime"][:19] for line in records if _is_object(line))
    return records + [json.dumps(record).encode() for record in clock_tail(latest)]


def _is_object(line: bytes) -> bool:
    try:
        return bool(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", json.loads(line)["eventTime"]))
    except (ValueError, TypeError, KeyError, RecursionError):  # the hostile lines
        return False


def clock_tail(latest: str, instances: int = 30) -> list[dict]:
    """Keys issued just past the late-arrival grace (300 s) after the ``latest`` eventTime, to
    instances on every partition: the stream then judges the calls still waiting for an
    issuance, as `detect` does at the end of its input, before any state expires (30
    instances miss one of 3 partitions about once in 10^5)."""
    at = datetime.fromisoformat(latest + "+00:00") + timedelta(seconds=301)
    tail = []
    for n in range(instances):
        record = issuance()
        instance = f"i-0fa{n:014x}"
        record.update(eventTime=at.strftime("%Y-%m-%dT%H:%M:%SZ"), eventID=f"clock-tail-{n}",
                      recipientAccountId="999988887777")
        record["requestParameters"] = {"roleArn": "arn:aws:iam::999988887777:role/web",
                                       "roleSessionName": instance}
        record["responseElements"] = {"credentials": {
            "accessKeyId": f"ASIACLOCKTAIL{n:07d}",
            "expiration": (at + timedelta(hours=6)).strftime("%b %-d, %Y, %-I:%M:%S %p")}}
        tail.append(record)
    return tail


def write_chunks(folder: Path, lines: list[bytes], count: int) -> list[Path]:
    size = -(-len(lines) // count)
    paths = []
    for n in range(count):
        path = folder / f"chunk-{n}.jsonl"
        path.write_bytes(b"\n".join(lines[n * size:(n + 1) * size]) + b"\n")
        paths.append(path)
    return paths


def expected_findings(d, config: Path, chunks: list[Path]) -> list[bytes]:
    """What detect finds in the chunks, in order: like the forwarder, it sorts each file by
    event time, so the chunks (not one file of them all) give the stream's order."""
    offline = d.exfilguard("detect", "--config", str(config), *map(str, chunks))
    assert offline.returncode == 0, offline.stderr.decode()
    return sorted(offline.stdout.splitlines())


def start_forward(d, path: Path, log: Path) -> subprocess.Popen:
    """``exfilguard forward`` of one chunk, 20 records a message, running on its own."""
    with open(log, "ab") as out:
        return subprocess.Popen([EXFILGUARD, "forward", "--batch-records", "20", "--no-progress",
                                 str(path)], env=d.env, stdout=out, stderr=subprocess.STDOUT)


def wait_for_findings(d, expected: list[bytes], timeout: float) -> list[bytes]:
    """The latest version of each finding, as detect writes it, once it equals ``expected``
    (or what there is when ``timeout`` runs out)."""
    deadline = time.monotonic() + timeout
    streamed: list[bytes] = []
    while time.monotonic() < deadline:
        left = max(5.0, deadline - time.monotonic())
        streamed = sorted(as_detect_gives(f) for f in read_findings(d, len(expected), left))
        if streamed == expected:
            break
        time.sleep(2)
    return streamed


def difference(expected: list[bytes], streamed: list[bytes]) -> str:
    def brief(line: bytes) -> str:
        f = json.loads(line)
        ip = f["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]
        return (f"{f['resource']['accessKeyDetails']['accessKeyId']} "
                f"{ip['ipAddressV4'] or ip['ipAddressV6']} count={f['service']['count']} "
                f"({f['evidence'].get('rule')})")

    missing = sorted(set(map(brief, expected)) - set(map(brief, streamed)))
    extra = sorted(set(map(brief, streamed)) - set(map(brief, expected)))
    return f"{len(expected)} expected, {len(streamed)} streamed; missing {missing}; wrong {extra}"
