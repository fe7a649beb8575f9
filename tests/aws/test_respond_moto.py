"""``exfilguard respond`` on moto's server: a dry run changes nothing, --apply puts the IAM
console's AWSRevokeOlderSessions policy (deny all, aws:TokenIssueTime before now) on the
finding's role, a role off the allow-list is never touched, and every step is logged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from findings_samples import ipv4, write_jsonl
from moto_world import MANAGEMENT, client, run

from streams.notify.respond import POLICY_NAME, Responder, RespondNotifier

ROLE = "stratus-red-team-ec2-steal-credentials-role"  # the invictus finding's role
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "ec2.amazonaws.com"}}]}


@pytest.fixture
def role(aws_env):
    iam = client(aws_env, "iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))
    yield iam
    for name in iam.list_role_policies(RoleName=ROLE)["PolicyNames"]:
        iam.delete_role_policy(RoleName=ROLE, PolicyName=name)
    iam.delete_role(RoleName=ROLE)


@pytest.fixture
def finding_file(tmp_path):
    finding = ipv4()
    finding["accountId"] = MANAGEMENT
    return finding, write_jsonl(tmp_path / "findings.jsonl", [finding])


def policy_of(iam) -> dict | None:
    try:
        return iam.get_role_policy(RoleName=ROLE, PolicyName=POLICY_NAME)["PolicyDocument"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchEntity"
        return None


def test_dry_run_changes_nothing(aws_env, role, finding_file):
    finding, path = finding_file
    result = run(aws_env, "respond", finding["id"], "--from-file", str(path),
                 "--allow-role", ROLE)
    assert result.returncode == 0, result.stderr
    note = json.loads(result.stdout)["service"]["additionalInfo"]["response"]
    assert (note["outcome"], note["applied"], note["role"]) == ("dry-run", False, ROLE)
    assert policy_of(role) is None
    assert f"finding {finding['id']}: revoke-sessions dry-run role={ROLE}" in result.stderr


def test_apply_puts_the_revoke_policy_with_the_token_time_condition(aws_env, role, finding_file):
    finding, path = finding_file
    before = datetime.now(UTC).replace(microsecond=0)
    result = run(aws_env, "respond", finding["id"], "--from-file", str(path),
                 "--allow-role", "stratus-*", "--apply")
    after = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    policy = policy_of(role)
    assert policy is not None
    [statement] = policy["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == \
        ("Deny", ["*"], ["*"])
    issued = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert before <= datetime.fromisoformat(issued.replace("Z", "+00:00")) <= after
    note = json.loads(result.stdout)["service"]["additionalInfo"]["response"]
    assert note == {"action": "revoke-sessions", "role": ROLE, "account": MANAGEMENT,
                    "policyName": POLICY_NAME, "tokenIssuedBefore": issued, "applied": True,
                    "outcome": "applied",
                    "reason": f"sessions of role {ROLE} issued before {issued} denied"}
    assert f"revoke-sessions applied role={ROLE}" in result.stderr


def test_a_role_off_the_allow_list_is_not_touched(aws_env, role, finding_file):
    finding, path = finding_file
    result = run(aws_env, "respond", finding["id"], "--from-file", str(path),
                 "--allow-role", "web-*", "--apply")
    assert result.returncode == 1
    assert policy_of(role) is None
    assert "refused" in result.stderr and "not on the allow-list" in result.stderr
    without = run(aws_env, "respond", finding["id"], "--from-file", str(path), "--apply")
    assert without.returncode == 2 and "--apply needs --allow-role" in without.stderr


def test_an_unknown_id_is_one_line(aws_env, finding_file):
    _, path = finding_file
    result = run(aws_env, "respond", "0" * 32, "--from-file", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"finding {'0' * 32} is not in {path}" in result.stderr


def test_from_the_topic_each_finding_once_failures_dead_lettered(aws_env, role):
    iam = client(aws_env, "iam")
    dead, notes = [], []

    class Dead:
        def send(self, finding, reason, raw=None):
            dead.append((finding["id"], reason))

    responder = Responder(lambda _account: iam, [ROLE, "ghost-role"], apply=True)
    notifier = RespondNotifier(responder, Dead(), notes.append)
    finding = ipv4()
    ghost = json.loads(json.dumps(finding))
    ghost["id"] = "f" * 32
    ghost["resource"]["accessKeyDetails"]["userName"] = "ghost-role"  # no such role
    notifier.deliver([finding, ghost])
    notifier.deliver([finding])  # an update of an answered finding: nothing again
    assert [n["service"]["additionalInfo"]["response"]["outcome"] for n in notes] == \
        ["applied", "failed"]
    [(dead_id, reason)] = dead
    assert dead_id == ghost["id"] and reason.startswith("respond: iam PutRolePolicy: NoSuchEntity")
    assert policy_of(iam) is not None


def test_an_archived_finding_is_skipped(aws_env, role):
    finding = ipv4()
    finding["service"]["archived"] = True
    response = Responder(lambda _account: role, [ROLE], apply=True).respond(finding)
    assert (response.outcome, response.applied) == ("skipped", False)
    assert policy_of(role) is None


def test_unreachable_aws_is_one_line(aws_env, finding_file):
    finding, path = finding_file
    env = {**aws_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens there
    result = run(env, "respond", finding["id"], "--from-file", str(path), "--allow-role", ROLE,
                 "--apply")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "exfilguard respond: error: AWS credentials:" in result.stderr


def test_the_workers_echo_of_a_note_is_not_answered_again(aws_env, role):
    """The worker writes each note back into the finding's later versions: a version carrying
    an applied note is not answered again (a new run included), and a failed response is tried
    again only once the finding has more calls than when it failed."""
    iam = client(aws_env, "iam")
    notes = []

    class Dead:
        def send(self, finding, reason, raw=None):
            pass

    finding = ipv4()
    applied = RespondNotifier(Responder(lambda _a: iam, [ROLE], apply=True), Dead(),
                              notes.append)
    applied.deliver([finding])
    echo = notes[-1]  # what the worker's next version of the finding carries
    fresh_run = RespondNotifier(Responder(lambda _a: iam, [ROLE], apply=True), Dead(),
                                notes.append)
    fresh_run.deliver([echo])
    assert len(notes) == 1
    ghost = json.loads(json.dumps(finding))
    ghost["id"] = "f" * 32
    ghost["resource"]["accessKeyDetails"]["userName"] = "ghost-role"  # no such role
    failing = RespondNotifier(Responder(lambda _a: iam, ["ghost-role"], apply=True), Dead(),
                              notes.append)
    failing.deliver([ghost])
    failing.deliver([notes[-1]])  # the failed note coming back: same count, not tried again
    assert [n["service"]["additionalInfo"]["response"]["outcome"] for n in notes[1:]] == \
        ["failed"]
    more = json.loads(json.dumps(notes[-1]))
    more["service"]["count"] += 1
    failing.deliver([more])  # a new call: tried again
    assert [n["service"]["additionalInfo"]["response"]["outcome"] for n in notes[1:]] == \
        ["failed", "failed"]
