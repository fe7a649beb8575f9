"""OCSF on the real broker: ``notify ocsf`` turns the findings topic into OCSF Detection
Findings on a topic of their own (keyed by finding id, committed after delivery), and
``findings --format ocsf|asff`` prints the topic converted."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from confluent_kafka import Consumer
from conftest import read_to_end

from streams.kafka.settings import load_kafka_settings
from streams.kafka.sink import produce_findings
from streams.notify.asff import to_asff
from streams.notify.ocsf import to_ocsf

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes, dict]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ocsf-check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got, empty = [], 0
    while empty < 6:
        message = consumer.poll(1.0)
        if message is None or message.error():
            empty += 1
            continue
        got.append((message.key(), json.loads(message.value())))
    consumer.close()
    return got


def test_ocsf_notifier_and_findings_formats_on_the_broker(deployment):
    d = deployment(partitions=1)
    finding = json.loads((GOLDEN / "invictus-detect.jsonl").read_text())
    updated = copy.deepcopy(finding)
    updated["service"]["count"] = 5
    settings = load_kafka_settings({}, environ=d.env)
    produce_findings(settings, settings.topic_findings, [finding, updated])
    group = f"{d.env['EXFILGUARD_APP_ID']}-notify-ocsf"
    # Each run until its group has delivered and committed every version now on the topic.
    first = d.through_the_end("notify", "ocsf", group=group)
    assert first.returncode == 0, first.stderr.decode()
    out_topic = f"{settings.topic_findings}-ocsf"
    written = [(m.key(), json.loads(m.value()))
               for m in read_to_end(settings.bootstrap_servers, out_topic)]
    # One batch: the latest version of the finding, keyed by its id.
    assert written == [(finding["id"].encode(), to_ocsf(updated))]
    # This one exits by itself, idle for --timeout seconds: that path stays tested too.
    again = d.exfilguard("notify", "ocsf", "--timeout", "5")
    assert again.returncode == 0 and b"0 findings in 0 batches" in again.stderr
    printed = d.exfilguard("findings", "--from-beginning", "--latest-only", "--format", "ocsf",
                           "--timeout", "5")
    assert [json.loads(line) for line in printed.stdout.splitlines()] == [to_ocsf(updated)]
    asff = d.exfilguard("findings", "--from-beginning", "--latest-only", "--format", "asff",
                        "--timeout", "5")
    assert [json.loads(line) for line in asff.stdout.splitlines()] == [to_asff(updated)]
