"""``exfilguard notify securityhub`` on moto's server: findings land in Security Hub as ASFF
(botocore validates every field against the service model), at most 100 a call, and a second
import of the same finding updates it; findings Security Hub refuses are retried, then
dead-lettered with its reason (botocore's Stubber: moto refuses nothing valid)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from findings_samples import copies, inside_aws, ipv4, ipv6, write_jsonl
from moto_world import MANAGEMENT, client, run

from streams.notify.asff import product_arn, to_asff
from streams.notify.consumer import DeadLetterFile
from streams.notify.respond import Response, with_response
from streams.notify.securityhub import DeliveryFailed, SecurityHubNotifier


def own(finding: dict) -> dict:
    """The finding as if about moto's account: a custom integration imports its own only."""
    finding["accountId"] = MANAGEMENT
    return finding


def hub_findings(aws_env) -> dict[str, dict]:
    hub = client(aws_env, "securityhub")
    found = {}
    for page in hub.get_paginator("get_findings").paginate():
        found.update({f["Id"]: f for f in page["Findings"]})
    return found


def test_asff_mapping_of_an_ipv4_and_an_ipv6_finding():
    four, six = to_asff(ipv4()), to_asff(ipv6())
    assert four["SchemaVersion"] == "2018-10-08"
    assert four["ProductArn"] == product_arn("us-east-1", "123837392027")
    assert four["ProductArn"].endswith(":product/123837392027/default")
    assert four["FindingProviderFields"]["Severity"] == {"Label": "HIGH", "Original": "8"}
    assert four["FindingProviderFields"]["Types"] == [
        "TTPs/Credential Access/UnauthorizedAccess:IAMUser-InstanceCredentialExfiltration."
        "OutsideAWS"]
    assert [r["Type"] for r in four["Resources"]] == ["AwsIamAccessKey", "AwsEc2Instance"]
    assert four["Resources"][0]["Id"] == "ASIATFQR7NSC36DZQP7P"
    assert four["Resources"][1]["Id"].endswith(":instance/i-0dbc91f429e48eeed")
    assert four["Action"]["AwsApiCallAction"]["RemoteIpDetails"]["IpAddressV4"] == \
        "192.168.10.20"
    assert four["Network"]["SourceIpV4"] == "192.168.10.20"
    assert four["UpdatedAt"] == ipv4()["updatedAt"]
    # RemoteIpDetails has no IPv6 field: the address is in Network.SourceIpV6 and ProductFields.
    address = ipv6()["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV6"]
    assert "RemoteIpDetails" not in six["Action"]["AwsApiCallAction"]
    assert six["Network"]["SourceIpV6"] == address
    assert six["ProductFields"]["exfilguard/RemoteIpV6"] == address
    assert to_asff(inside_aws())["Severity"]["Label"] == "MEDIUM"


def test_the_command_imports_a_file_and_a_second_run_updates(aws_env, tmp_path):
    findings = [own(ipv4()), own(ipv6())]
    path = write_jsonl(tmp_path / "findings.jsonl", findings)
    first = run(aws_env, "notify", "securityhub", "--from-file", str(path))
    assert first.returncode == 0, first.stderr
    assert "2 imported to Security Hub in 1 calls" in first.stderr
    stored = hub_findings(aws_env)
    assert {f["id"] for f in findings} <= set(stored)
    assert stored[findings[1]["id"]]["Network"]["SourceIpV6"].startswith("2a00:")
    before = len(stored)
    findings[0]["service"]["count"] = 7
    findings[0]["updatedAt"] = "2023-07-10T12:30:00.000Z"
    write_jsonl(path, findings)
    again = run(aws_env, "notify", "securityhub", "--from-file", str(path))
    assert again.returncode == 0, again.stderr
    stored = hub_findings(aws_env)
    assert len(stored) == before  # the same ids: updated, not duplicated
    assert stored[findings[0]["id"]]["ProductFields"]["exfilguard/Count"] == "7"
    assert stored[findings[0]["id"]]["UpdatedAt"] == "2023-07-10T12:30:00.000Z"


def test_a_noted_version_carries_the_response(aws_env, tmp_path):
    finding = own(copies(ipv4(), 1)[0])
    role = finding["resource"]["accessKeyDetails"]["userName"]
    noted = with_response(finding, Response(
        "revoke-sessions", role, MANAGEMENT, True, "applied", "sessions denied",
        token_issued_before="2026-12-03T06:00:00Z"))
    path = write_jsonl(tmp_path / "findings.jsonl", [finding, noted])  # as the topic holds them
    result = run(aws_env, "notify", "securityhub", "--from-file", str(path))
    assert result.returncode == 0, result.stderr
    stored = hub_findings(aws_env)[finding["id"]]
    assert stored["ProductFields"]["exfilguard/Response/Outcome"] == "applied"
    assert stored["ProductFields"]["exfilguard/Response/Role"] == role
    # moto accepts and keeps a re-import's Note; Security Hub itself keeps the first import's
    # (so ProductFields above are what a Security Hub user sees change).
    assert stored["Note"] == {"Text": f"applied: revoke-sessions on role {role} in account "
                                      f"{MANAGEMENT}: sessions denied",
                              "UpdatedBy": "exfilguard respond",
                              "UpdatedAt": "2026-12-03T06:00:00Z"}


def noted(finding: dict, outcome: str) -> dict:
    role = finding["resource"]["accessKeyDetails"]["userName"]
    return with_response(finding, Response("revoke-sessions", role, finding["accountId"],
                                           outcome == "applied", outcome, f"{outcome} reason",
                                           token_issued_before="2026-12-03T06:00:00Z"))


def stub_hub():
    return boto3.client("securityhub", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x")


IMPORTED = {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []}


def test_set_notes_sets_each_new_note_once(tmp_path):
    # moto has no BatchUpdateFindings: botocore's Stubber checks the calls against the model.
    hub = stub_hub()
    finding = own(ipv4())
    dry, applied = noted(finding, "dry-run"), noted(finding, "applied")
    identifier = [{"Id": finding["id"], "ProductArn": to_asff(finding)["ProductArn"]}]
    dead = DeadLetterFile(str(tmp_path / "dead.jsonl"))
    notifier = SecurityHubNotifier(hub, dead, set_notes=True)
    with Stubber(hub) as stub:
        stub.add_response("batch_import_findings", IMPORTED, {"Findings": [to_asff(finding)]})
        stub.add_response("batch_import_findings", IMPORTED, {"Findings": [to_asff(dry)]})
        stub.add_response("batch_update_findings",
                          {"ProcessedFindings": identifier, "UnprocessedFindings": []},
                          {"FindingIdentifiers": identifier,
                           "Note": {"Text": to_asff(dry)["Note"]["Text"],
                                    "UpdatedBy": "exfilguard respond"}})
        stub.add_response("batch_import_findings", IMPORTED, {"Findings": [to_asff(dry)]})
        stub.add_response("batch_import_findings", IMPORTED, {"Findings": [to_asff(applied)]})
        stub.add_response("batch_update_findings",
                          {"ProcessedFindings": identifier, "UnprocessedFindings": []},
                          {"FindingIdentifiers": identifier,
                           "Note": {"Text": to_asff(applied)["Note"]["Text"],
                                    "UpdatedBy": "exfilguard respond"}})
        # No note, a new note, the same note again (no update call), a changed note.
        for version in (finding, dry, dry, applied):
            notifier.deliver([version])
        stub.assert_no_pending_responses()
    assert (notifier.notes_set, notifier.notes_unset, dead.count) == (2, 0, 0)
    assert notifier.close().endswith("2 notes set, 0 not")


def test_a_note_security_hub_does_not_take_is_counted_not_dead_lettered(tmp_path):
    hub = stub_hub()
    finding = noted(own(ipv4()), "applied")
    identifier = {"Id": finding["id"], "ProductArn": to_asff(finding)["ProductArn"]}
    dead = DeadLetterFile(str(tmp_path / "dead.jsonl"))
    notifier = SecurityHubNotifier(hub, dead, set_notes=True)
    with Stubber(hub) as stub:
        stub.add_response("batch_import_findings", IMPORTED)
        stub.add_response("batch_update_findings", {
            "ProcessedFindings": [], "UnprocessedFindings": [{
                "FindingIdentifier": identifier, "ErrorCode": "FindingNotFound",
                "ErrorMessage": "not yet"}]})
        notifier.deliver([finding])
        stub.assert_no_pending_responses()
    assert (notifier.imported, notifier.notes_set, notifier.notes_unset) == (1, 0, 1)
    assert dead.count == 0  # imported, the note in ProductFields: only Security Hub's Note lacks


def test_set_notes_without_the_permission_stops_with_one_line(tmp_path):
    hub = stub_hub()
    notifier = SecurityHubNotifier(hub, DeadLetterFile(str(tmp_path / "dead.jsonl")),
                                   set_notes=True)
    with Stubber(hub) as stub:
        stub.add_response("batch_import_findings", IMPORTED)
        stub.add_client_error("batch_update_findings", "AccessDeniedException",
                              "not authorized to perform: securityhub:BatchUpdateFindings")
        with pytest.raises(DeliveryFailed, match="--set-notes needs "
                                                 "securityhub:BatchUpdateFindings") as raised:
            notifier.deliver([noted(own(ipv4()), "applied")])
    assert raised.value.exit_code == 1


def test_batches_of_at_most_100(aws_env, tmp_path):
    hub = client(aws_env, "securityhub")
    sizes: list[int] = []
    hub.meta.events.register("provide-client-params.securityhub.BatchImportFindings",
                             lambda params, **_: sizes.append(len(params["Findings"])))
    dead = DeadLetterFile(str(tmp_path / "dead.jsonl"))
    notifier = SecurityHubNotifier(hub, dead)
    findings = [own(f) for f in copies(ipv4(), 250)]
    notifier.deliver(findings)
    assert sizes == [100, 100, 50]
    assert notifier.imported == 250 and dead.count == 0
    assert {f["id"] for f in findings} <= set(hub_findings(aws_env))


def test_refused_findings_are_retried_then_dead_lettered(tmp_path):
    hub = boto3.client("securityhub", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    good, bad = own(ipv4()), own(ipv6())
    refused = {"Id": bad["id"], "ErrorCode": "InvalidInput", "ErrorMessage": "Finding too big"}
    sleeps: list[float] = []
    with Stubber(hub) as stub:
        stub.add_response("batch_import_findings", {"FailedCount": 1, "SuccessCount": 1,
                                                    "FailedFindings": [refused]})
        stub.add_response("batch_import_findings", {"FailedCount": 1, "SuccessCount": 0,
                                                    "FailedFindings": [refused]},
                          {"Findings": [to_asff(bad)]})  # only the refused one is retried
        stub.add_response("batch_import_findings", {"FailedCount": 1, "SuccessCount": 0,
                                                    "FailedFindings": [refused]})
        dead = DeadLetterFile(str(tmp_path / "dead.jsonl"))
        notifier = SecurityHubNotifier(hub, dead, attempts=3, sleep=sleeps.append)
        notifier.deliver([good, bad])
        stub.assert_no_pending_responses()
    assert sleeps == [1.0, 2.0]
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["finding"]["id"] for d in letters] == [bad["id"]]
    assert letters[0]["reason"] == ("securityhub FailedFindings after 3 attempts: "
                                    "InvalidInput: Finding too big")
    assert notifier.imported == 1


def test_a_refused_call_stops_with_one_line(tmp_path):
    hub = boto3.client("securityhub", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    notifier = SecurityHubNotifier(hub, DeadLetterFile(str(tmp_path / "dead.jsonl")))
    with Stubber(hub) as stub:
        stub.add_client_error("batch_import_findings", "InvalidAccessException",
                              "Account is not subscribed to AWS Security Hub")
        with pytest.raises(DeliveryFailed, match="InvalidAccessException: Account is not "
                                                 "subscribed") as raised:
            notifier.deliver([own(ipv4())])
    assert raised.value.exit_code == 1  # the loop commits nothing, the command exits 1


def test_unreachable_aws_is_one_line(aws_env, tmp_path):
    path = write_jsonl(tmp_path / "findings.jsonl", [own(ipv4())])
    env = {**aws_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens there
    result = run(env, "notify", "securityhub", "--from-file", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "exfilguard notify: error: AWS credentials:" in result.stderr


def test_a_finding_of_another_account_is_dead_lettered_unsent(aws_env, tmp_path):
    mine, theirs = own(ipv4()), ipv6()  # ipv6()'s account is 111122223333, not moto's
    path = write_jsonl(tmp_path / "findings.jsonl", [mine, theirs])
    result = run(aws_env, "notify", "securityhub", "--from-file", str(path))
    assert result.returncode == 0, result.stderr
    assert "1 imported to Security Hub in 1 calls" in result.stderr
    [letter] = [json.loads(line) for line in
                (tmp_path / "findings.jsonl.dead-letters.jsonl").read_text().splitlines()]
    assert letter["finding"]["id"] == theirs["id"]
    assert letter["reason"].startswith("securityhub: a finding of account 111122223333; this "
                                       f"notifier imports account {MANAGEMENT}'s")
    assert "111122223333" not in {f["AwsAccountId"] for f in hub_findings(aws_env).values()}


def test_no_region_is_one_line(aws_env, tmp_path):
    path = write_jsonl(tmp_path / "findings.jsonl", [own(ipv4())])
    env = {k: v for k, v in aws_env.items() if k != "AWS_DEFAULT_REGION"}
    result = run(env, "notify", "securityhub", "--from-file", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "securityhub: no AWS region; give --region or set AWS_REGION" in result.stderr
