"""``forward --topic NEW`` creates the topic as the input topic is made (README promises it)."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient, ConfigResource

INVICTUS = Path(__file__).resolve().parents[1] / "fixtures" / "invictus" / "CloudTrail"


def test_forward_to_a_new_topic_creates_it_with_the_input_topics_settings(deployment):
    d = deployment(partitions=2)
    topic = d.env["EXFILGUARD_TOPIC_INPUT"] + "-backtest-oct"
    run = d.exfilguard("forward", "--topic", topic, "--no-progress", str(INVICTUS))
    assert run.returncode == 0, run.stderr.decode()
    client = AdminClient({"bootstrap.servers": d.env["EXFILGUARD_BOOTSTRAP_SERVERS"]})
    meta = client.list_topics(topic, timeout=10)
    assert len(meta.topics[topic].partitions) == 2
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    config = client.describe_configs([resource])[resource].result(timeout=10)
    assert config["retention.ms"].value == "-1"
    assert b"records" in run.stderr
