"""A stream of scenarios to break things under (the cluster test, the chaos trials).

Not a test module: a helper. The stream is every labelled scenario (test_scenarios_stream) then
one key stolen and used 500 times from two addresses (test_lifecycle), so the counts are worth
checking; what must arrive is what ``exfilguard detect`` finds in the same records.
"""

from __future__ import annotations

import json
import subprocess
import time
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
    return lines + [json.dumps(record).encode() for record in thefts]


def write_chunks(folder: Path, lines: list[bytes], count: int) -> list[Path]:
    size = -(-len(lines) // count)
    paths = []
    for n in range(count):
        path = folder / f"chunk-{n}.jsonl"
        path.write_bytes(b"\n".join(lines[n * size:(n + 1) * size]) + b"\n")
        paths.append(path)
    return paths


def expected_findings(d, config: Path, lines: list[bytes], folder: Path) -> list[bytes]:
    whole = folder / "stream.jsonl"
    whole.write_bytes(b"\n".join(lines) + b"\n")
    offline = d.exfilguard("detect", "--config", str(config), str(whole))
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
                f"{ip['ipAddressV4'] or ip['ipAddressV6']} count={f['service']['count']}")

    missing = sorted(set(map(brief, expected)) - set(map(brief, streamed)))
    extra = sorted(set(map(brief, streamed)) - set(map(brief, expected)))
    return f"{len(expected)} expected, {len(streamed)} streamed; missing {missing}; wrong {extra}"
