"""``exfilguard findings --summary`` on the real broker: one line per finding, its latest
version, unless --all-versions."""

from __future__ import annotations

import json

from confluent_kafka import Producer
from test_pipeline import INVICTUS

from streams.kafka.codec import encode_finding


def test_summary_shows_each_finding_once_at_its_latest_version(deployment):
    d = deployment(partitions=1)
    assert d.exfilguard("topics", "create").returncode == 0
    detected = d.exfilguard("detect", str(INVICTUS))
    [finding] = [json.loads(line) for line in detected.stdout.splitlines()]
    update = json.loads(json.dumps(finding))
    update["service"]["count"] = finding["service"]["count"] + 3
    producer = Producer({"bootstrap.servers": d.env["EXFILGUARD_BOOTSTRAP_SERVERS"]})
    for version in (finding, update):
        producer.produce(d.env["EXFILGUARD_TOPIC_FINDINGS"], key=finding["id"].encode(),
                         value=encode_finding(version))
    assert producer.flush(30) == 0
    latest = d.exfilguard("findings", "--from-beginning", "--summary", "--timeout", "10")
    assert latest.returncode == 0, latest.stderr.decode()
    [line] = latest.stdout.decode().splitlines()
    assert f"{update['service']['count']} call(s)" in line
    assert f"account {finding['accountId']} id {finding['id']}" in line
    assert b"1 findings printed" in latest.stderr
    every = d.exfilguard("findings", "--from-beginning", "--summary", "--all-versions",
                         "--timeout", "10")
    assert len(every.stdout.splitlines()) == 2
