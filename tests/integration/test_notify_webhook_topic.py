"""`exfilguard notify webhook` on the real broker: a consumer group that commits after each
post, so a second run sends nothing again and an update of severity sends one message."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from streams.kafka.settings import load_kafka_settings
from streams.kafka.sink import produce_findings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_notify_webhook import SECRET_PATH, Endpoint  # noqa: E402


def test_webhook_from_the_findings_topic(deployment, tmp_path):
    d = deployment(EXFILGUARD_FINDINGS_ENCODING="json")
    detected = d.exfilguard("detect", str(Path(__file__).resolve().parents[1] /
                                          "fixtures/invictus/CloudTrail"))
    finding = json.loads(detected.stdout.splitlines()[0])
    settings = load_kafka_settings({}, environ=d.env)
    counted = copy.deepcopy(finding)
    counted["service"]["count"] = 9
    produce_findings(settings, settings.topic_findings, [finding, counted])
    server = Endpoint(failures=[503])
    try:
        args = ("notify", "webhook", "--url-env", "HOOK",
                "--state", str(tmp_path / "sent.json"), "--max-per-minute", "600")
        group = f"{d.env['EXFILGUARD_APP_ID']}-notify-webhook"
        # Each run until its group has posted and committed every version now on the topic.
        first = d.through_the_end(*args, group=group, HOOK=server.url)
        assert first.returncode == 0, first.stderr.decode()
        assert [b["event"] for b in server.bodies] == ["new"]
        assert SECRET_PATH.encode() not in first.stderr
        again = d.through_the_end(*args, group=group, HOOK=server.url)
        assert again.returncode == 0 and len(server.bodies) == 1
        assert b"0 findings in 0 batches" in again.stderr  # offsets were committed
        lowered = copy.deepcopy(counted)
        lowered["severity"] = 5
        produce_findings(settings, settings.topic_findings, [lowered])
        third = d.through_the_end(*args, group=group, HOOK=server.url)
        assert third.returncode == 0, third.stderr.decode()
        assert [b["event"] for b in server.bodies] == ["new", "severity_changed"]
    finally:
        server.close()
