"""``notify securityhub`` and ``notify eventbridge`` reading the real broker and delivering to
moto's server: the latest version of each finding delivered, offsets committed after delivery,
so a second run delivers nothing and a new version updates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import boto3

from streams.kafka.settings import load_kafka_settings
from streams.kafka.sink import produce_findings

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def aws(env: dict, service: str):
    return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def notify(d, name: str, **env: str):
    """``notify NAME`` until its group has delivered and committed every finding version now
    on the topic (conftest's ``through_the_end``), in its default group."""
    return d.through_the_end("notify", name, group=f"{d.env['EXFILGUARD_APP_ID']}-notify-{name}",
                             **env)


def test_security_hub_and_eventbridge_from_the_findings_topic(deployment, moto_env, tmp_path):
    d = deployment(partitions=1)
    finding = json.loads((GOLDEN / "invictus-detect.jsonl").read_text())
    finding["accountId"] = "123456789012"  # moto's account: Security Hub imports its own
    counted = copy.deepcopy(finding)
    counted["service"]["count"] = 4
    settings = load_kafka_settings({}, environ=d.env)
    produce_findings(settings, settings.topic_findings, [finding, counted])
    sqs, events = aws(moto_env, "sqs"), aws(moto_env, "events")
    queue = sqs.create_queue(QueueName="guardduty-like")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"]
                                   )["Attributes"]["QueueArn"]
    events.put_rule(Name="findings", EventPattern=json.dumps(
        {"source": ["exfilguard"], "detail-type": ["GuardDuty Finding"]}))
    events.put_targets(Rule="findings", Targets=[{"Id": "q", "Arn": arn}])

    hub = notify(d, "securityhub", **moto_env)
    assert hub.returncode == 0, hub.stderr.decode()
    [imported] = aws(moto_env, "securityhub").get_findings()["Findings"]
    assert imported["Id"] == finding["id"]
    assert imported["ProductFields"]["exfilguard/Count"] == "4"  # the latest version
    bridge = notify(d, "eventbridge", **moto_env)
    assert bridge.returncode == 0, bridge.stderr.decode()
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(message["Body"])["detail"] == counted
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    # Committed: nothing again. A new version: an update in Security Hub, one more event.
    for name in ("securityhub", "eventbridge"):
        again = notify(d, name, **moto_env)
        assert again.returncode == 0 and b"0 findings in 0 batches" in again.stderr
    raised = copy.deepcopy(counted)
    raised["service"]["count"] = 9
    produce_findings(settings, settings.topic_findings, [raised])
    for name in ("securityhub", "eventbridge"):
        third = notify(d, name, **moto_env)
        assert third.returncode == 0, third.stderr.decode()
    [updated] = aws(moto_env, "securityhub").get_findings()["Findings"]
    assert updated["ProductFields"]["exfilguard/Count"] == "9"
    [later] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(later["Body"])["detail"]["service"]["count"] == 9
