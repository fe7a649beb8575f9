"""Replay on the real broker: a topic range gives `exfilguard detect`'s findings byte for byte,
every time, while the live worker's offsets, groups and tables stay as they were."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INVICTUS = FIXTURES / "invictus" / "CloudTrail"
DAY = ("--start", "2023-07-10T00:00:00Z", "--end", "2023-07-11T00:00:00Z")


def group_offsets(admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
    request = [ConsumerGroupTopicPartitions(group)]
    result = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def groups(admin: AdminClient) -> set[str]:
    listed = admin.list_consumer_groups(request_timeout=30).result()
    return {g.group_id for g in listed.valid}


def end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-watermarks"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return {(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                            timeout=30)[1]
                for p in partitions}
    finally:
        consumer.close()


def create_input_topic(d) -> str:
    """The input topic, kept forever: the forwarder stamps records with their 2023 eventTime,
    which the default 7-day retention.ms would delete at the broker's next retention check."""
    from confluent_kafka.admin import NewTopic

    topic = d.env["EXFILGUARD_TOPIC_INPUT"]
    admin = AdminClient({"bootstrap.servers": d.env["EXFILGUARD_BOOTSTRAP_SERVERS"]})
    new = NewTopic(topic, int(d.env["EXFILGUARD_PARTITIONS"]), 1, config={"retention.ms": "-1"})
    admin.create_topics([new])[topic].result(timeout=30)
    return topic


def wait_caught_up(admin: AdminClient, group: str, bootstrap: str, topic: str,
                   timeout: float = 120) -> dict[tuple[str, int], int]:
    """The worker's committed offsets once they cover the input topic and stop moving."""
    ends = end_offsets(bootstrap, topic)
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        offsets = group_offsets(admin, group)
        if all(offsets.get(tp, -1) >= end for tp, end in ends.items()) and offsets == previous:
            return offsets
        previous = offsets
        time.sleep(3)
    raise AssertionError(f"worker group {group} not caught up: {previous} vs {ends}")


def test_replay_of_a_topic_range_is_detect_and_leaves_the_worker_alone(deployment, tmp_path):
    d = deployment(EXFILGUARD_FINDING_UPDATE_INTERVAL_SECONDS="0")
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 0\n")
    bootstrap = d.env["EXFILGUARD_BOOTSTRAP_SERVERS"]
    topic = create_input_topic(d)
    app_id = d.env["EXFILGUARD_APP_ID"]
    worker = d.start_worker(config=str(config))
    forwarded = d.exfilguard("forward", "--config", str(config), str(INVICTUS))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    detect = d.exfilguard("detect", "--config", str(config), str(INVICTUS))
    assert detect.returncode == 0, detect.stderr.decode()
    assert detect.stdout.count(b"\n") == 1

    admin = AdminClient({"bootstrap.servers": bootstrap})
    offsets_before = wait_caught_up(admin, app_id, bootstrap, topic)
    topics_before = set(admin.list_topics(timeout=30).topics)
    groups_before = groups(admin)
    assert app_id in groups_before

    outputs = []
    for name in ("first.jsonl", "second.jsonl"):
        result = d.exfilguard("replay", "--config", str(config), "--topic", topic, *DAY,
                              "--output", str(tmp_path / name))
        assert result.returncode == 0, result.stderr.decode()
        outputs.append((tmp_path / name).read_bytes())
        note = result.stderr.decode()
        # The forwarder's copies of address changes on every partition were folded back.
        copies = int(re.search(r"(\d+) partition copies folded", note).group(1))
        assert copies > 0, note
    assert outputs[0] == outputs[1] == detect.stdout

    # A range that ends before the theft: no finding.
    early = d.exfilguard("replay", "--config", str(config), "--topic", topic,
                         "--start", "2023-07-10T00:00:00Z", "--end", "2023-07-10T11:57:00Z",
                         "--output", "-")
    assert early.returncode == 0, early.stderr.decode()
    assert early.stdout == b""

    # The live worker: same committed offsets, no new group, no new (changelog) topic, alive.
    assert group_offsets(admin, app_id) == offsets_before
    assert groups(admin) == groups_before
    assert set(admin.list_topics(timeout=30).topics) == topics_before
    assert worker.poll() is None

    # Avro to a topic of its own, read back by the example consumer.
    target = f"{topic}-replayed"
    produced = d.exfilguard("replay", "--config", str(config), "--topic", topic, *DAY,
                            "--output-topic", target)
    assert produced.returncode == 0, produced.stderr.decode()
    assert f"1 delivered to {target}" in produced.stderr.decode()
    read = d.exfilguard("findings", "--topic", target, "--from-beginning", "--timeout", "5")
    assert read.returncode == 0, read.stderr.decode()
    assert [json.loads(line) for line in read.stdout.splitlines()] == \
        [json.loads(line) for line in detect.stdout.splitlines()]
    assert groups(admin) - groups_before <= {g for g in groups(admin)
                                             if g.startswith("exfilguard-findings-")}
    assert group_offsets(admin, app_id) == offsets_before


def test_backtest_of_a_topic_range(deployment, tmp_path):
    d = deployment()
    topic = create_input_topic(d)
    forwarded = d.exfilguard("forward", str(INVICTUS))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    result = d.exfilguard("backtest", "--labels", str(FIXTURES / "labels" / "invictus.csv"),
                          "--json", "--topic", topic, *DAY)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == {"precision": 1.0, "recall": 1.0, "f1": 1.0,
                                         "true_positives": 1, "false_positives": 0,
                                         "false_negatives": 0}


def test_replay_of_a_missing_topic_is_one_line(deployment):
    d = deployment()
    result = d.exfilguard("replay", "--topic", "no-such-topic", *DAY, "--output", "-")
    assert result.returncode == 2
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and "topic no-such-topic does not exist" in lines[0], lines


def test_a_range_forwarded_out_of_time_order_is_detect(deployment, tmp_path):
    """Half an hour of a generated organisation's trail (100,000 records) on several partitions,
    its files forwarded latest first (a backfill): a partition's offsets are not in time order,
    so the reader sorts the range, here 500 records at a time into runs on disk that it merges,
    and the findings are detect's byte for byte."""
    import sys

    sys.path.insert(0, str(FIXTURES.parents[1]))
    from bench.generator import Generator

    d = deployment()
    topic = create_input_topic(d)
    records = list(Generator(3).records(100_000))
    paths = []
    for index in range(4):  # files of 25,000 records, forwarded out of their time order
        path = tmp_path / f"part-{index}.jsonl"
        path.write_bytes(b"".join(r + b"\n" for r in records[index * 25_000:(index + 1) * 25_000]))
        paths.append(str(path))
    config = tmp_path / "config.yaml"
    config.write_text("geoip: false\n")
    forwarded = d.exfilguard("forward", "--config", str(config), *reversed(paths))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    detect = d.exfilguard("detect", "--config", str(config), *paths)
    assert detect.returncode == 0, detect.stderr.decode()
    assert detect.stdout.count(b"\n") >= 1
    # At most 500 records held in memory: the rest in sorted runs on disk, merged.
    result = d.exfilguard("replay", "--config", str(config), "--topic", topic,
                          "--start", "2024-03-01T00:00:00Z", "--end", "2024-03-02T00:00:00Z",
                          "--hold", "500", "--output", "-")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == detect.stdout, result.stderr.decode()
    note = result.stderr.decode()
    held = int(re.search(r"at most (\d+) records held in memory", note).group(1))
    runs = int(re.search(r"(\d+) sorted runs on disk", note).group(1))
    assert held == 500 and runs >= 4, note
