"""The worker writes the findings topic in each encoding, and `exfilguard findings` reads it."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

from test_pipeline import INVICTUS, as_detect_gives, consume_all, read_findings, write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from registry_standin import RegistryStandIn  # noqa: E402


def run_worker_over_invictus(d, tmp_path) -> tuple[list[bytes], list[dict]]:
    config = write_config(tmp_path)
    worker = d.start_worker(config=str(config))
    forwarded = d.exfilguard("forward", "--config", str(config), str(INVICTUS))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    offline = d.exfilguard("detect", "--config", str(config), str(INVICTUS))
    expected = offline.stdout.splitlines()
    findings = read_findings(d, len(expected))
    raw = consume_all(d.env["EXFILGUARD_BOOTSTRAP_SERVERS"], d.env["EXFILGUARD_TOPIC_FINDINGS"])
    assert d.stop_worker(worker) == 0
    assert sorted(as_detect_gives(f) for f in findings) == sorted(expected)
    return [m.value() for m in raw], findings


def test_json_findings_on_the_real_broker(deployment, tmp_path):
    d = deployment(EXFILGUARD_FINDINGS_ENCODING="json")
    values, findings = run_worker_over_invictus(d, tmp_path)
    # Any sink reads the topic as plain JSON objects: no framing, no schema needed.
    assert values and all(json.loads(v)["id"] for v in values)
    assert {json.loads(v)["id"] for v in values} == {f["id"] for f in findings}


def test_confluent_framed_findings_on_the_real_broker(deployment, tmp_path):
    with RegistryStandIn() as registry:
        d = deployment(EXFILGUARD_FINDINGS_ENCODING="confluent",
                       EXFILGUARD_SCHEMA_REGISTRY_URL=registry.url)
        values, findings = run_worker_over_invictus(d, tmp_path)
        subject = d.env["EXFILGUARD_TOPIC_FINDINGS"] + "-value"
        assert list(registry.subjects) == [subject]
        schema_id = registry.subjects[subject][0]
        assert values and all(v[:1] == b"\x00" and struct.unpack(">I", v[1:5])[0] == schema_id
                              for v in values)
        # `exfilguard findings` without the registry says what is missing, and skips nothing
        # silently.
        blind = d.exfilguard("findings", "--from-beginning", "--timeout", "3",
                             EXFILGUARD_SCHEMA_REGISTRY_URL="", EXFILGUARD_FINDINGS_ENCODING="")
        assert blind.returncode == 0 and blind.stdout == b""
        assert b"set kafka.schema_registry_url" in blind.stderr
    assert findings
