"""``exfilguard notify eventbridge`` on moto's server: a GuardDuty-style rule (plus the source
exfilguard) routes each new or changed finding to an SQS queue, as the event GuardDuty sends;
a redelivered finding is not put twice; refused entries are retried, then dead-lettered."""

from __future__ import annotations

import json

import boto3
from botocore.stub import ANY, Stubber
from findings_samples import copies, ipv4, ipv6, write_jsonl
from moto_world import client, run

from streams.notify.consumer import DeadLetterFile
from streams.notify.eventbridge import EventBridgeNotifier
from streams.notify.respond import Response, with_response

# A team's GuardDuty rule after the one change: exfilguard beside aws.guardduty.
PATTERN = {"source": ["aws.guardduty", "exfilguard"], "detail-type": ["GuardDuty Finding"]}


def routed_queue(aws_env, name: str) -> str:
    sqs, events = client(aws_env, "sqs"), client(aws_env, "events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]
                                   )["Attributes"]["QueueArn"]
    events.create_event_bus(Name=name)
    events.put_rule(Name=name, EventBusName=name, EventPattern=json.dumps(PATTERN))
    events.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "q", "Arn": arn}])
    return url


def received(aws_env, url: str) -> list[dict]:
    sqs, got = client(aws_env, "sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return got
        for m in messages:
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_new_and_changed_findings_arrive_as_guardduty_events(aws_env, tmp_path):
    url = routed_queue(aws_env, "findings-bus")
    findings = [ipv4(), ipv6()]
    path = write_jsonl(tmp_path / "findings.jsonl", findings)
    args = ("notify", "eventbridge", "--bus", "findings-bus", "--from-file", str(path),
            "--state", str(tmp_path / "put.json"))
    first = run(aws_env, *args)
    assert first.returncode == 0, first.stderr
    events = received(aws_env, url)
    assert [e["detail"] for e in events] == findings
    assert {(e["source"], e["detail-type"]) for e in events} == {("exfilguard",
                                                                  "GuardDuty Finding")}
    assert events[0]["resources"][0].endswith(":instance/i-0dbc91f429e48eeed")
    # The same file again: nothing new or changed, nothing put.
    again = run(aws_env, *args)
    assert again.returncode == 0 and received(aws_env, url) == []
    assert "2 unchanged not sent" in again.stderr
    findings[0]["service"]["count"] = 5
    write_jsonl(path, findings)
    third = run(aws_env, *args)
    assert third.returncode == 0, third.stderr
    assert [e["detail"]["service"]["count"] for e in received(aws_env, url)] == [5]


def test_a_response_note_is_put_again_and_a_rule_can_match_it(aws_env, tmp_path):
    url = routed_queue(aws_env, "noted-bus")
    events = client(aws_env, "events")
    # A second rule, on the note itself: only applied revocations reach this queue.
    applied_url = client(aws_env, "sqs").create_queue(QueueName="applied")["QueueUrl"]
    applied_arn = client(aws_env, "sqs").get_queue_attributes(
        QueueUrl=applied_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="applied", EventBusName="noted-bus", EventPattern=json.dumps(
        {**PATTERN, "detail": {"service": {"additionalInfo": {"response": {
            "outcome": ["applied"]}}}}}))
    events.put_targets(Rule="applied", EventBusName="noted-bus",
                       Targets=[{"Id": "q", "Arn": applied_arn}])
    finding = ipv4()
    role = finding["resource"]["accessKeyDetails"]["userName"]
    dry, applied = (with_response(finding, Response(
        "revoke-sessions", role, finding["accountId"], outcome == "applied", outcome, "…",
        token_issued_before="2026-12-03T06:00:00Z")) for outcome in ("dry-run", "applied"))
    state = str(tmp_path / "put.json")
    for version in (finding, dry, applied):
        path = write_jsonl(tmp_path / "findings.jsonl", [version])
        result = run(aws_env, "notify", "eventbridge", "--bus", "noted-bus", "--from-file",
                     str(path), "--state", state)
        assert result.returncode == 0, result.stderr
    # Each note changes the finding, so each version is an event, the note in its detail.
    notes = [(e["detail"]["service"].get("additionalInfo") or {}).get("response")
             for e in received(aws_env, url)]
    assert [n and n["outcome"] for n in notes] == [None, "dry-run", "applied"]
    [only] = received(aws_env, applied_url)
    assert only["detail"] == applied


def test_ten_entries_a_call(aws_env, tmp_path):
    events = client(aws_env, "events")
    sizes: list[int] = []
    events.meta.events.register("provide-client-params.events.PutEvents",
                                lambda params, **_: sizes.append(len(params["Entries"])))
    notifier = EventBridgeNotifier(events, DeadLetterFile(str(tmp_path / "dead.jsonl")))
    notifier.deliver(copies(ipv4(), 25))
    assert sizes == [10, 10, 5] and notifier.put == 25


def test_refused_entries_are_retried_then_dead_lettered(tmp_path):
    events = boto3.client("events", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    good, bad = ipv4(), ipv6()
    refused = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
    with Stubber(events) as stub:
        stub.add_response("put_events", {"FailedEntryCount": 1,
                                         "Entries": [{"EventId": "1"}, refused]})
        stub.add_response("put_events", {"FailedEntryCount": 1, "Entries": [refused]},
                          {"Entries": ANY})
        dead = DeadLetterFile(str(tmp_path / "dead.jsonl"))
        notifier = EventBridgeNotifier(events, dead, attempts=2, sleep=lambda _: None)
        notifier.deliver([good, bad])
        stub.assert_no_pending_responses()
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["finding"]["id"] for d in letters] == [bad["id"]]
    assert letters[0]["reason"] == ("eventbridge PutEvents after 2 attempts: InternalFailure: "
                                    "try again")
    assert notifier.put == 1


def test_an_aws_source_is_refused_in_one_line(aws_env, tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", [ipv4()])
    result = run(aws_env, "notify", "eventbridge", "--source", "aws.guardduty",
                 "--from-file", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--source aws.guardduty: sources starting with aws." in result.stderr
