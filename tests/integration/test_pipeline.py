"""End to end on the real broker: forward → worker → findings, against `exfilguard detect`."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime
from pathlib import Path

from confluent_kafka import Consumer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INVICTUS = FIXTURES / "invictus" / "CloudTrail"


def invictus_records() -> list[dict]:
    records = []
    for path in sorted(INVICTUS.glob("*.json")):
        records += json.loads(path.read_text())["Records"]
    return records


def projection(finding: dict) -> tuple:
    action = finding["service"]["action"]["awsApiCallAction"]
    ip = action["remoteIpDetails"]
    return (finding["type"], finding["severity"],
            finding["resource"]["accessKeyDetails"]["accessKeyId"],
            (action["remoteAccountDetails"] or {}).get("accountId"),
            ip["ipAddressV4"] or ip["ipAddressV6"], finding["service"]["count"],
            finding["service"]["archived"])


def read_findings(d, expected: int, timeout: float = 90) -> list[dict]:
    """The latest version of each finding, once `expected` distinct ids have arrived."""
    deadline = time.monotonic() + timeout
    findings: list[dict] = []
    while time.monotonic() < deadline:
        result = d.exfilguard("findings", "--from-beginning", "--latest-only", "--timeout", "3")
        assert result.returncode == 0, result.stderr.decode()
        findings = [json.loads(line) for line in result.stdout.splitlines()]
        if len(findings) >= expected:
            return findings
    return findings


def as_detect_gives(finding: dict) -> bytes:
    """A streamed finding as `detect` writes it: the stream alone stamps ``detectedAt`` (the
    wall-clock time it first emitted the finding), so it must be there, and is then left out."""
    info = finding["service"]["additionalInfo"]
    stamped = datetime.fromisoformat(info["detectedAt"].replace("Z", "+00:00"))
    assert abs(time.time() - stamped.timestamp()) < 3600, info
    copy = json.loads(json.dumps(finding))
    copy["service"]["additionalInfo"]["detectedAt"] = None
    return json.dumps(copy, sort_keys=True, separators=(",", ":")).encode()


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n"
                            for x in lines))
    return path


def test_stream_gives_the_findings_detect_gives_byte_for_byte(deployment, tmp_path):
    d = deployment(EXFILGUARD_FINDING_UPDATE_INTERVAL_SECONDS="0")
    config = write_config(tmp_path)
    worker = d.start_worker(config=str(config))
    forwarded = d.exfilguard("forward", "--config", str(config), str(INVICTUS))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    offline = d.exfilguard("detect", "--config", str(config), str(INVICTUS))
    assert offline.returncode == 0, offline.stderr.decode()
    expected = offline.stdout.splitlines()
    assert len(expected) >= 1
    findings = read_findings(d, len(expected))
    assert all(json.loads(line)["service"]["additionalInfo"]["detectedAt"] is None
               for line in expected)
    streamed = [as_detect_gives(f) for f in findings]
    assert sorted(streamed) == sorted(expected)
    high = [f for f in findings if f["type"].endswith("OutsideAWS")]
    assert high and high[0]["severity"] == 8
    assert d.stop_worker(worker) == 0


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("finding_update_interval_seconds: 0\n")
    return path


def test_shuffled_input_with_bad_lines_gives_the_same_findings(deployment, tmp_path):
    d = deployment()
    config = write_config(tmp_path)
    worker = d.start_worker(config=str(config))
    records = invictus_records()
    rng = random.Random(7)
    rng.shuffle(records)
    # Uses before their issuance: every call is delivered in an earlier batch than the
    # AssumeRole that issued its key.
    issuances = [r for r in records if r.get("eventName") == "AssumeRole"]
    others = [r for r in records if r.get("eventName") != "AssumeRole"]
    hostile = ["this is not json", "[1, 2, 3]", '{"eventName": "GetCallerIdentity", "userIdentity"'
               ': {"type": "AssumedRole", "arn": "arn:aws:sts::123837392027:assumed-role/r/i-0dbc9'
               '1f429e48eeed", "accessKeyId": "ASIAX"}, "eventTime": "2023-07-10T12:00:00Z", '
               '"sourceIPAddress": "<script>"}']
    first = write_jsonl(tmp_path / "calls.jsonl", others[:1500] + hostile + others[1500:])
    second = write_jsonl(tmp_path / "issuances.jsonl", issuances)
    for path in (first, second):
        result = d.exfilguard("forward", "--config", str(config), str(path))
        assert result.returncode == 0, result.stderr.decode()
        assert b"skipped" in result.stderr or path == second
    offline = d.exfilguard("detect", "--config", str(config), str(INVICTUS))
    expected = [json.loads(line) for line in offline.stdout.splitlines()]
    findings = read_findings(d, len(expected))
    assert sorted(map(projection, findings)) == sorted(map(projection, expected))
    # The hostile record that parsed as JSON went to the dead-letter topic with its reason.
    letters = consume_all(d.env["EXFILGUARD_BOOTSTRAP_SERVERS"], d.env["EXFILGUARD_TOPIC_DLQ"])
    reasons = [dict(m.headers() or [])["exfilguard-reason"].decode() for m in letters]
    assert any("neither an IP address nor an AWS service" in r for r in reasons), reasons
    assert d.metrics(worker)["exfilguard_records_dead_lettered_total"] >= 1
    assert worker.poll() is None  # bad input never stops the worker


def consume_all(bootstrap: str, topic: str, timeout: float = 20) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{time.time()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout
    idle_until = time.monotonic() + 5
    while time.monotonic() < deadline and time.monotonic() < idle_until:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        messages.append(message)
        idle_until = time.monotonic() + 3
    consumer.close()
    return messages


def test_garbage_straight_onto_the_topic_is_dead_lettered_not_fatal(deployment, tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, ConfigResource

    d = deployment(partitions=2)
    worker = d.start_worker(config=str(write_config(tmp_path)))
    bootstrap = d.env["EXFILGUARD_BOOTSTRAP_SERVERS"]
    producer = Producer({"bootstrap.servers": bootstrap})
    topic = d.env["EXFILGUARD_TOPIC_INPUT"]
    oversized = b'{"ec2RoleDelivery": "' + b"x" * (600 << 10) + b'"}'
    for value in (b"\xff\xfe\x00garbage assumed-role/r/i-0123456789abcdef0", b"", oversized,
                  b'{"eventName": "AssumeRole", "userIdentity": {"invokedBy": '
                  b'"ec2.amazonaws.com"}, "requestParameters": {"roleSessionName": '
                  b'"i-0123456789abcdef0"}, "eventTime": "2024-01-01T00:00:00Z"}'):
        producer.produce(topic, value=value, key=b"k")
    # A batch (exfilguard forward's format) with a bad line among good ones: that line goes.
    good = json.dumps(invictus_records()[0]).encode()
    producer.produce(topic, value=b"\n".join([good, b'{"eventName": "AssumeRole", "userId', good,
                                              b""]),
                     partition=1, headers=[("exfilguard-batch", b"ndjson")])
    assert producer.flush(30) == 0
    del producer
    letters = consume_all(bootstrap, d.env["EXFILGUARD_TOPIC_DLQ"], timeout=60)
    reasons = sorted(dict(m.headers())["exfilguard-reason"].decode() for m in letters)
    assert len(reasons) == 5, reasons
    [from_batch] = [m for m in letters if dict(m.headers())["exfilguard-source"].endswith(b"#2")]
    assert from_batch.value() == b'{"eventName": "AssumeRole", "userId'
    assert "not JSON" in dict(from_batch.headers())["exfilguard-reason"].decode()
    assert any("not JSON" in r for r in reasons)
    assert any("exceeds" in r for r in reasons)
    assert any("empty record" in r for r in reasons)
    assert any("without an access key id" in r for r in reasons)
    assert worker.poll() is None
    metrics = d.metrics(worker)
    assert metrics["exfilguard_records_dead_lettered_total"] == 5
    assert metrics["exfilguard_records_total"] == 7  # four messages, and a batch of three
    # Changelogs of the tables are compacted and never deleted by retention.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    app_id = d.env["EXFILGUARD_APP_ID"]
    changelogs = [topic for topic in admin.list_topics(timeout=10).topics
                  if topic.startswith(f"{app_id}-") and topic.endswith("-changelog")]
    assert f"{app_id}-detector_state-changelog" in changelogs  # the core's tables, one changelog
    for changelog in changelogs:
        resource = ConfigResource(ConfigResource.Type.TOPIC, changelog)
        config = admin.describe_configs([resource])[resource].result()
        assert config["cleanup.policy"].value == "compact", changelog
