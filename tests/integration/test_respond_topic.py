"""``exfilguard respond`` reading the real broker and acting on moto's IAM: an id looked up on
the findings topic (dry run), then --from-topic --apply revokes the role's sessions once."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import boto3
import pytest

from streams.kafka.settings import load_kafka_settings
from streams.kafka.sink import produce_findings

moto_server = pytest.importorskip("moto.server")
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ROLE = "stratus-red-team-ec2-steal-credentials-role"


@pytest.fixture
def iam_env():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    yield env
    server.stop()


def test_respond_from_the_findings_topic(deployment, iam_env):
    d = deployment(partitions=1)
    finding = json.loads((GOLDEN / "invictus-detect.jsonl").read_text())
    finding["accountId"] = "123456789012"  # moto's account: the credentials' own
    settings = load_kafka_settings({}, environ=d.env)
    produce_findings(settings, settings.topic_findings, [finding])
    iam = boto3.client("iam", endpoint_url=iam_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument="{}")
    looked_up = d.exfilguard("respond", finding["id"], "--allow-role", ROLE, "--timeout", "5",
                             **iam_env)
    assert looked_up.returncode == 0, looked_up.stderr.decode()
    assert json.loads(looked_up.stdout)["service"]["additionalInfo"]["response"]["outcome"] \
        == "dry-run"
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == []
    applied = d.exfilguard("respond", "--from-topic", "--apply", "--allow-role", ROLE,
                           "--timeout", "8", **iam_env)
    assert applied.returncode == 0, applied.stderr.decode()
    assert b"responses: 1 applied" in applied.stderr
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["AWSRevokeOlderSessions"]
    again = d.exfilguard("respond", "--from-topic", "--apply", "--allow-role", ROLE,
                         "--timeout", "5", **iam_env)
    assert again.returncode == 0 and b"0 findings in 0 batches" in again.stderr
