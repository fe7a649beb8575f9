"""A replicated cluster losing brokers: three KRaft nodes (tools/kafka/cluster.sh), topics with
replication factor 3 and min.insync.replicas=2, acks=all producers; a broker killed -9 mid-stream
and later another restarted lose no finding and count nothing twice."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource
from conftest import Deployment
from fault_stream import (
    CONFIG,
    difference,
    expected_findings,
    start_forward,
    stream_lines,
    wait_for_findings,
    write_chunks,
)
from kafka_broker import start_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    nodes = start_cluster(tmp_path_factory.mktemp("kafka-cluster"))
    yield nodes
    nodes.down()


def leader_of(bootstrap: str, topic: str) -> int:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return meta.topics[topic].partitions[0].leader


def test_topics_are_replicated_three_times_with_two_in_sync(cluster, tmp_path):
    d = Deployment(cluster.bootstrap, tmp_path, EXFILGUARD_REPLICATION_FACTOR="3")
    created = d.exfilguard("topics", "create")
    assert created.returncode == 0, created.stderr.decode()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    names = [d.env[f"EXFILGUARD_TOPIC_{kind}"] for kind in ("INPUT", "FINDINGS", "DLQ")]
    deadline = time.monotonic() + 30  # created on the controller, then known to every broker
    while not set(names) <= (meta := admin.list_topics(timeout=10)).topics.keys():
        assert time.monotonic() < deadline, "topics never appeared in the metadata"
        time.sleep(0.5)
    for name in names:
        assert {len(p.replicas) for p in meta.topics[name].partitions.values()} == {3}
    while True:  # a broker that has not heard of a topic yet answers UNKNOWN_TOPIC_OR_PART
        try:
            configs = admin.describe_configs([ConfigResource("topic", n) for n in names])
            insync = {f.result()["min.insync.replicas"].value for f in configs.values()}
            break
        except KafkaException:
            assert time.monotonic() < deadline, "topic configs never readable"
            time.sleep(0.5)
    assert insync == {"2"}


def test_a_broker_killed_and_another_restarted_lose_nothing(cluster, tmp_path):
    d = Deployment(cluster.bootstrap, tmp_path, partitions=3, EXFILGUARD_REPLICATION_FACTOR="3")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    worker = d.start_worker(config=str(config))
    lines = stream_lines(tmp_path)
    chunks = write_chunks(tmp_path, lines, 4)
    expected = expected_findings(d, config, chunks)
    assert len(expected) >= 17
    log = tmp_path / "forward.log"

    assert start_forward(d, chunks[0], log).wait(120) == 0
    # The input's first leader dies while a forwarder writes: its partitions' leaders move.
    killed = leader_of(cluster.bootstrap, d.env["EXFILGUARD_TOPIC_INPUT"])
    forward = start_forward(d, chunks[1], log)
    cluster.kill(killed)
    assert forward.wait(180) == 0, log.read_text()
    assert start_forward(d, chunks[2], log).wait(180) == 0, log.read_text()  # two of three up
    cluster.up(killed)
    restarted = 1 + killed % 3
    forward = start_forward(d, chunks[3], log)
    cluster.down(restarted)
    cluster.up(restarted)
    assert forward.wait(180) == 0, log.read_text()

    streamed = wait_for_findings(d, expected, timeout=120)
    assert streamed == expected, difference(expected, streamed)
    assert worker.poll() is None, worker.log_path.read_text()[-3000:]
    d.close()
