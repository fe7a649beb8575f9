"""S3 ingestion on moto's server (S3 and SQS, loopback only) into the real local broker.

``forward --follow`` over CloudTrail's REGION/YYYY/MM/DD layout, killed with SIGKILL and
restarted mid-way, and ``forward --sqs-queue-url`` with two forwarders sharing one queue: every
object's records reach the input topic, none twice, digests are skipped, poison is dead-lettered.
"""

from __future__ import annotations

import gzip
import json
import logging
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from conftest import EXFILGUARD

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

ACCOUNT = "111122223333"
PREFIX = f"AWSLogs/{ACCOUNT}/CloudTrail/"
LEAKY = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION")


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    nothing = tmp_path_factory.mktemp("aws") / "none"
    yield {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(nothing), "AWS_SHARED_CREDENTIALS_FILE": str(nothing),
           "AWS_EC2_METADATA_DISABLED": "true"}
    server.stop()


def aws(aws_env, service):
    return boto3.client(service, endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                        region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def cloudtrail_object(name: str, records: int) -> tuple[bytes, list[str]]:
    """A gzip CloudTrail delivery file of calls by an IAM user; its event ids."""
    ids = [f"{name}-{n:03d}" for n in range(records)]
    body = {"Records": [{
        "eventVersion": "1.08", "eventTime": "2024-03-01T10:00:00Z", "eventName": "ListBuckets",
        "eventSource": "s3.amazonaws.com", "eventID": event_id, "sourceIPAddress": "198.51.100.7",
        "userIdentity": {"type": "IAMUser", "accountId": ACCOUNT,
                         "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
                         "accessKeyId": "AKIAEXAMPLEALICE0001"},
        "recipientAccountId": ACCOUNT} for event_id in ids]}
    return gzip.compress(json.dumps(body).encode()), ids


def put_objects(s3, bucket: str, region: str, day: str, count: int, tag: str) -> list[str]:
    ids = []
    for n in range(count):
        stamp = day.replace("/", "")
        key = (f"{PREFIX}{region}/{day}/{ACCOUNT}_CloudTrail_{region}_{stamp}T10{n:02d}Z_"
               f"{tag}{n:02d}.json.gz")
        body, event_ids = cloudtrail_object(f"{region}-{stamp}-{tag}{n:02d}", 5)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        ids += event_ids
    return ids


def put_digest(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Body=b'{"awsAccountId": "111122223333", "logFiles": []}',
                  Key=f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2024/03/01/"
                      f"{ACCOUNT}_CloudTrail-Digest_us-east-1_trail_us-east-1_20240301T1000Z.json.gz")


def topic_event_ids(bootstrap: str, topic: str) -> Counter:
    """Every record's eventID in the topic's committed messages, batches split into lines."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True})
    meta = consumer.list_topics(topic, timeout=10)
    parts = set(meta.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    seen: Counter = Counter()
    deadline = time.monotonic() + 60
    while parts and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                parts.discard(message.partition())
            continue
        for line in (message.value() or b"").split(b"\n"):
            if line.strip():
                seen[json.loads(line)["eventID"]] += 1
    consumer.close()
    assert not parts, "input topic not read to its end"
    return seen


def dead_letters(bootstrap: str, topic: str) -> list[tuple[bytes, dict]]:
    """(key, headers) of every message of the topic, all partitions read to their end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    parts = set(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    found, deadline = [], time.monotonic() + 60
    while parts and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                parts.discard(message.partition())
            continue
        found.append((message.key(), {k: v for k, v in message.headers() or []}))
    consumer.close()
    assert not parts, "dead-letter topic not read to its end"
    return found


def start_forward(deployment, aws_env, log, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in deployment.env.items() if k not in LEAKY}
    return subprocess.Popen([EXFILGUARD, "forward", "--no-progress", *args],
                            env={**env, **aws_env}, stdout=log, stderr=subprocess.STDOUT)


def kill_once_logged(process: subprocess.Popen, log_path, line: str, times: int) -> None:
    """SIGKILL the forwarder as soon as its log has said ``line`` ``times`` times."""
    try:
        deadline = time.monotonic() + 120
        while log_path.read_text().count(line) < times:
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()


def queue_drained(sqs, queue_url: str) -> bool:
    """No message on the queue, visible or in flight: every one was deleted."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return all(v == "0" for v in attributes["Attributes"].values())


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_follow_forwards_every_object_once_across_regions_days_and_a_kill(
        broker, deployment, aws_env, tmp_path):
    d = deployment(partitions=2)
    assert d.exfilguard("topics", "create").returncode == 0
    topic = d.env["EXFILGUARD_TOPIC_INPUT"]
    s3 = aws(aws_env, "s3")
    bucket = f"trail-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    expected = []
    for region in ("eu-west-1", "us-east-1", "us-west-2"):
        for day in ("2024/03/01", "2024/03/02"):
            expected += put_objects(s3, bucket, region, day, 20, "a")
    put_digest(s3, bucket)
    log_path = tmp_path / "forward.log"
    source = f"s3://{bucket}/AWSLogs/"  # digests beside the logs, as CloudTrail writes them
    args = ("--follow", "--poll-seconds", "0.5", "--objects-per-transaction", "2", source)
    with open(log_path, "ab") as log:
        # Killed as soon as part of the objects is committed: mid-way, mid-transaction.
        kill_once_logged(start_forward(d, aws_env, log, *args), log_path, "messages committed", 3)
        at_kill = topic_event_ids(broker, topic)
        assert 0 < len(at_kill) < len(expected), "the kill did not land mid-way"
        second = start_forward(d, aws_env, log, *args)
        try:
            wait_for(lambda: set(topic_event_ids(broker, topic)) >= set(expected), 180,
                     "the objects from before the kill")
            # New objects between polls: in a region that sorts before us-west-2's last key,
            # and in a new day.
            expected += put_objects(s3, bucket, "us-east-1", "2024/03/02", 3, "b")
            expected += put_objects(s3, bucket, "eu-west-1", "2024/03/03", 3, "c")
            wait_for(lambda: set(topic_event_ids(broker, topic)) >= set(expected), 120,
                     "the objects that arrived after the restart")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0
    seen = topic_event_ids(broker, topic)
    log_text = log_path.read_text()
    assert set(seen) == set(expected), log_text[-3000:]
    twice = {event_id: n for event_id, n in seen.items() if n > 1}
    assert not twice, f"forwarded more than once: {sorted(twice)[:5]}\n{log_text[-3000:]}"
    assert "CloudTrail-Digest/ (CloudTrail's integrity digests" in log_text


def test_sqs_shared_queue_forwards_each_object_and_dead_letters_poison(
        broker, deployment, aws_env, tmp_path):
    d = deployment(partitions=2)
    assert d.exfilguard("topics", "create").returncode == 0
    topic = d.env["EXFILGUARD_TOPIC_INPUT"]
    s3, sqs = aws(aws_env, "s3"), aws(aws_env, "sqs")
    bucket = f"trail-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    args = ("--sqs-queue-url", queue_url, "--poll-seconds", "1")
    expected = []
    logs = [tmp_path / f"forward-{n}.log" for n in range(2)]
    with open(logs[0], "ab") as log0, open(logs[1], "ab") as log1:
        forwarders = [start_forward(d, aws_env, log, *args) for log in (log0, log1)]
        try:
            for region in ("eu-west-1", "us-east-1"):
                for day in ("2024/03/01", "2024/03/02"):
                    expected += put_objects(s3, bucket, region, day, 8, "s")
            put_digest(s3, bucket)
            poison_key = f"{PREFIX}us-east-1/2024/03/02/{ACCOUNT}_CloudTrail_broken.json.gz"
            s3.put_object(Bucket=bucket, Key=poison_key, Body=b"\x1f\x8bnot gzip at all")
            # An SNS-wrapped notification and an EventBridge event, for objects of a bucket
            # that notifies nothing itself.
            other = f"{bucket}-other"
            s3.create_bucket(Bucket=other)
            for shape in ("sns", "eventbridge"):
                key = f"{PREFIX}us-west-2/2024/03/02/{ACCOUNT}_CloudTrail_us-west-2_{shape}.json.gz"
                body, ids = cloudtrail_object(f"wrapped-{shape}", 5)
                s3.put_object(Bucket=other, Key=key, Body=body)
                expected += ids
                if shape == "sns":
                    inner = {"Records": [{"eventSource": "aws:s3",
                                          "eventName": "ObjectCreated:Put",
                                          "s3": {"bucket": {"name": other},
                                                 "object": {"key": key}}}]}
                    message = {"Type": "Notification", "Message": json.dumps(inner)}
                else:
                    message = {"source": "aws.s3", "detail-type": "Object Created",
                               "detail": {"bucket": {"name": other}, "object": {"key": key}}}
                sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
            wait_for(lambda: set(topic_event_ids(broker, topic)) >= set(expected), 180,
                     "every notified object")

            wait_for(lambda: queue_drained(sqs, queue_url), 60,
                     "the queue to be empty: every message deleted")
        finally:
            for forwarder in forwarders:
                forwarder.send_signal(signal.SIGTERM)
            codes = [forwarder.wait(60) for forwarder in forwarders]
    texts = [path.read_text() for path in logs]
    log_text = "\n".join(texts)
    assert codes == [0, 0], log_text[-3000:]
    seen = topic_event_ids(broker, topic)
    assert set(seen) == set(expected), log_text[-3000:]
    assert not [i for i, n in seen.items() if n > 1], log_text[-3000:]
    # Both forwarders took part: the queue was shared, not drained by one.
    assert all("records forwarded" in text for text in texts), log_text[-3000:]
    poison = dead_letters(broker, d.env["EXFILGUARD_TOPIC_DLQ"])
    assert [key for key, _ in poison] == [f"s3://{bucket}/{poison_key}".encode()]
    assert poison[0][1]["exfilguard-reason"].startswith(b"poison object: no CloudTrail record")


def test_sqs_forwarder_killed_mid_way_loses_no_object(broker, deployment, aws_env, tmp_path):
    """At-least-once on the queue: a forwarder killed with SIGKILL while it holds messages leaves
    them to come back after the visibility timeout; a second forwarder forwards every object."""
    d = deployment(partitions=2)
    assert d.exfilguard("topics", "create").returncode == 0
    topic = d.env["EXFILGUARD_TOPIC_INPUT"]
    s3, sqs = aws(aws_env, "s3"), aws(aws_env, "sqs")
    bucket = f"trail-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}",
                                 Attributes={"VisibilityTimeout": "3"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    expected = []
    for day in ("2024/03/01", "2024/03/02", "2024/03/03"):
        expected += put_objects(s3, bucket, "us-east-1", day, 15, "k")
    args = ("--sqs-queue-url", queue_url, "--poll-seconds", "1")
    log_path = tmp_path / "forward.log"
    with open(log_path, "ab") as log:
        kill_once_logged(start_forward(d, aws_env, log, *args), log_path, "records forwarded", 1)
        at_kill = topic_event_ids(broker, topic)
        assert 0 < len(at_kill) < len(expected), "the kill did not land mid-way"
        second = start_forward(d, aws_env, log, *args)
        try:
            wait_for(lambda: set(topic_event_ids(broker, topic)) >= set(expected), 180,
                     "every object after the kill")

            wait_for(lambda: queue_drained(sqs, queue_url), 60,
                     "the queue to be empty: every message deleted")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0, log_path.read_text()[-3000:]
    seen = topic_event_ids(broker, topic)
    assert set(seen) == set(expected), log_path.read_text()[-3000:]
    # A record forwarded twice is one whose message the kill left undeleted: only those before
    # the kill can appear twice, and the detector counts a repeated eventID once.
    twice = {event_id for event_id, n in seen.items() if n > 1}
    assert twice <= set(at_kill)
