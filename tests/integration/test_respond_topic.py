"""``exfilguard respond`` reading the real broker and acting on moto's IAM: an id looked up on
the findings topic (dry run), then --from-topic --apply revokes the role's sessions once and
writes the noted finding to a responses topic."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
from test_notify_ocsf_topic import read_all

from streams.kafka.settings import load_kafka_settings
from streams.kafka.sink import produce_findings

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
    applied = d.exfilguard("respond", "--from-topic", "--apply", "--allow-role", ROLE,
                           "--timeout", "8", "--output-topic", responses, **moto_env)
    assert applied.returncode == 0, applied.stderr.decode()
    assert b"responses: 1 applied" in applied.stderr
    [(key, noted)] = read_all(settings.bootstrap_servers, responses)
    assert key == finding["id"].encode()
    note = noted["service"]["additionalInfo"]["response"]
    assert (note["outcome"], note["role"], note["policyName"]) == \
        ("applied", ROLE, "AWSRevokeOlderSessions")
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["AWSRevokeOlderSessions"]
    again = d.exfilguard("respond", "--from-topic", "--apply", "--allow-role", ROLE,
                         "--timeout", "5", **moto_env)
    assert again.returncode == 0 and b"0 findings in 0 batches" in again.stderr
