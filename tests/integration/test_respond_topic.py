"""``exfilguard respond`` reading the real broker and acting on moto's IAM: an id looked up on
the findings topic (dry run), then --from-topic --apply revokes the role's sessions once and
writes the noted finding to a responses topic; with a worker running, the note reaches the
findings topic in its encoding and stays on the worker's later versions of the finding."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
import pytest
from conftest import read_to_end, topic_ends
from test_pipeline import write_config, write_jsonl

from streams.kafka.codec import finding_codec
from streams.kafka.settings import load_kafka_settings
from streams.kafka.sink import produce_findings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cloudtrail_builders import at, call, issuance  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ROLE = "stratus-red-team-ec2-steal-credentials-role"


def test_respond_from_the_findings_topic(deployment, moto_env):
    d = deployment(partitions=1)
    finding = json.loads((GOLDEN / "invictus-detect.jsonl").read_text())
    finding["accountId"] = "123456789012"  # moto's account: the credentials' own
    settings = load_kafka_settings({}, environ=d.env)
    produce_findings(settings, settings.topic_findings, [finding])
    iam = boto3.client("iam", endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument="{}")
    looked_up = d.exfilguard("respond", finding["id"], "--allow-role", ROLE, "--timeout", "5",
                             **moto_env)
    assert looked_up.returncode == 0, looked_up.stderr.decode()
    assert json.loads(looked_up.stdout)["service"]["additionalInfo"]["response"]["outcome"] \
        == "dry-run"
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == []
    responses = f"{settings.topic_findings}-responses"
    applied = respond_through_the_end(d, settings, "--apply", "--allow-role", ROLE,
                                      "--output-topic", responses, **moto_env)
    assert applied.returncode == 0, applied.stderr.decode()
    assert b"responses: 1 applied" in applied.stderr
    # The dry run by id is written back too (what would be done); the apply comes after it.
    [(dry_key, dry), (key, noted)] = [(m.key(), json.loads(m.value())) for m in
                                      read_to_end(settings.bootstrap_servers, responses)]
    assert dry_key == key == finding["id"].encode()
    assert dry["service"]["additionalInfo"]["response"]["outcome"] == "dry-run"
    note = noted["service"]["additionalInfo"]["response"]
    assert (note["outcome"], note["role"], note["policyName"]) == \
        ("applied", ROLE, "AWSRevokeOlderSessions")
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["AWSRevokeOlderSessions"]
    again = respond_through_the_end(d, settings, "--apply", "--allow-role", ROLE,
                                    **moto_env)
    assert again.returncode == 0 and b"0 findings in 0 batches" in again.stderr


MOTO_ACCOUNT = "123456789012"  # moto's: the credentials' own account
INSTANCE, KEY, THIEF = "i-0a1b2c3d4e5f60718", "ASIARESPONDNOTEQ7XK2", "45.33.32.156"


def theft(n: int) -> dict:
    return call(event_id=f"respond-theft-{n:03d}", time=at(minutes=2, seconds=n),
                access_key=KEY, instance_id=INSTANCE, source_ip=THIEF, account=MOTO_ACCOUNT)


def latest_versions(d, settings) -> dict[str, dict]:
    """Each finding id's last message on the findings topic, decoded as its encoding says."""
    codec = finding_codec(settings, writing=False)
    latest = {}
    for message in read_to_end(settings.bootstrap_servers, settings.topic_findings):
        latest[message.key().decode()] = codec.decode(message.value())
    return latest


def wait_for(d, settings, check, timeout: float = 60) -> dict:
    """The latest version of the one finding, once ``check`` holds for it."""
    deadline, finding = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        found = latest_versions(d, settings)
        if found:
            [finding] = found.values()
            if check(finding):
                return finding
        time.sleep(0.25)
    raise AssertionError(f"no such version in {timeout} s; the last: {finding}")


def respond_through_the_end(d, settings, *args: str, **env: str):
    """``respond --from-topic ARGS`` until its group has read every version now on the
    findings topic (conftest's ``through_the_end``), in its default group."""
    return d.through_the_end("respond", "--from-topic", *args,
                             group=f"{settings.app_id}-notify-respond", **env)


def responses(settings) -> list[tuple[bytes, dict]]:
    """The responses topic's messages now: (key, noted finding)."""
    return [(m.key(), json.loads(m.value()))
            for m in read_to_end(settings.bootstrap_servers, settings.topic_responses)]


def note_of(finding: dict) -> dict | None:
    return finding["service"]["additionalInfo"].get("response")


@pytest.mark.parametrize("encoding", ["avro", "json"])
def test_the_note_reaches_the_findings_topic_and_stays_on_later_versions(
        deployment, moto_env, tmp_path, encoding):
    d = deployment(partitions=2, EXFILGUARD_FINDINGS_ENCODING=encoding)
    settings = load_kafka_settings({}, environ=d.env)
    config = str(write_config(tmp_path))  # every update published at once
    worker = d.start_worker(config=config)
    first = write_jsonl(tmp_path / "a.jsonl", [
        issuance(event_id="respond-issuance", time=at(), instance_id=INSTANCE, access_key=KEY,
                 account=MOTO_ACCOUNT), theft(0), theft(1)])
    assert d.exfilguard("forward", first).returncode == 0
    finding = wait_for(d, settings, lambda f: f["service"]["count"] == 2)
    assert note_of(finding) is None
    iam = boto3.client("iam", endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    role = finding["resource"]["accessKeyDetails"]["userName"]
    iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")

    applied = respond_through_the_end(d, settings, "--apply", "--allow-role", role,
                                      **moto_env)
    assert applied.returncode == 0, applied.stderr.decode()
    assert b"responses: 1 applied" in applied.stderr
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["AWSRevokeOlderSessions"]
    # The note, on the responses topic and then, through the worker, on the findings topic:
    [(key, noted)] = responses(settings)
    assert key == finding["id"].encode()
    note = note_of(noted)
    assert (note["outcome"], note["applied"], note["role"]) == ("applied", True, role)
    on_topic = wait_for(d, settings, lambda f: note_of(f) is not None)
    assert note_of(on_topic) == note and on_topic["service"]["count"] == 2
    assert on_topic["id"] == finding["id"]

    # The thief goes on: the worker's later version counts the calls and keeps the note.
    more = write_jsonl(tmp_path / "b.jsonl", [theft(n) for n in range(2, 5)])
    assert d.exfilguard("forward", more).returncode == 0
    later = wait_for(d, settings, lambda f: f["service"]["count"] == 5)
    assert note_of(later) == note

    # A restarted worker republishes its held findings with their notes.
    d.stop_worker(worker)
    before = topic_ends(settings.bootstrap_servers, settings.topic_findings)
    worker = d.start_worker(config=config)
    deadline = time.monotonic() + 60
    while topic_ends(settings.bootstrap_servers, settings.topic_findings) == before:
        assert time.monotonic() < deadline, "nothing republished in 60 s"
        time.sleep(0.25)

    # The echo of the note is not answered again: the role's sessions are revoked once. This
    # respond reads every version so far, the republished ones included.
    again = respond_through_the_end(d, settings, "--apply", "--allow-role", role,
                                    **moto_env)
    assert again.returncode == 0, again.stderr.decode()
    assert b"applied" not in again.stderr.split(b"responses:")[-1]
    assert len(responses(settings)) == 1
    # Every version since the restart (its republished ones and any after) has the note.
    codec = finding_codec(settings, writing=False)
    republished = [codec.decode(m.value())
                   for m in read_to_end(settings.bootstrap_servers, settings.topic_findings)
                   if m.offset() >= before[m.partition()]]
    assert republished and all(note_of(f) == note for f in republished)
    d.stop_worker(worker)
