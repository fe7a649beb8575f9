"""``--format asff|ocsf``: every golden finding converts to an OCSF 1.8.0 Detection Finding that
validates against the OCSF schema (as shipped by ocsf-json-schema, Apache-2.0), and to ASFF that
botocore accepts for BatchImportFindings; the default output keeps its bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from streams.notify.asff import to_asff
from streams.notify.ocsf import OCSF_VERSION, to_ocsf
from streams.notify.respond import Response, with_response

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
INVICTUS = str(ROOT / "tests/fixtures/invictus/CloudTrail")
EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
FINDINGS = [json.loads(line) for path in sorted(GOLDEN.glob("*.jsonl"))
            for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def detection_finding() -> Draft202012Validator:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION)).get_class_schema(
        class_name="detection_finding", profiles=["cloud"])
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def batch_import():
    model = get_session().get_service_model("securityhub")
    return model.operation_model("BatchImportFindings").input_shape


def problems(validator: Draft202012Validator, event: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(event)]


def test_every_golden_finding_is_a_valid_ocsf_detection_finding(detection_finding):
    assert len(FINDINGS) > 10
    for finding in FINDINGS:
        event = to_ocsf(finding)
        assert problems(detection_finding, event) == [], finding["id"]
        assert (event["class_uid"], event["category_uid"]) == (2004, 2)
        assert event["type_uid"] == 200400 + event["activity_id"]
        assert event["finding_info"]["uid"] == finding["id"]
        assert event["metadata"]["version"] == "1.8.0"


def test_the_schema_check_catches_a_wrong_event(detection_finding):
    event = to_ocsf(FINDINGS[0])
    del event["finding_info"]
    event["severity_id"] = 8
    found = problems(detection_finding, event)
    assert any("finding_info" in p for p in found) and any("severity_id" in p for p in found)


def test_ocsf_fields_a_siem_reads():
    finding = json.loads((GOLDEN / "invictus-detect.jsonl").read_text())
    event = to_ocsf(finding)
    assert event["severity_id"] == 4 and event["severity"] == "High"
    assert event["evidences"][0]["src_endpoint"]["ip"] == "192.168.10.20"
    assert event["evidences"][0]["actor"]["user"]["credential_uid"] == "ASIATFQR7NSC36DZQP7P"
    assert [r["uid"] for r in event["resources"]] == ["ASIATFQR7NSC36DZQP7P",
                                                      "i-0dbc91f429e48eeed"]
    assert event["cloud"]["account"]["uid"] == "123837392027"
    assert event["activity_name"] == "Update"  # count 2: not the first version


def test_every_golden_finding_is_asff_botocore_accepts(batch_import):
    validator = ParamValidator()
    findings = [to_asff(f) for f in FINDINGS]
    report = validator.validate({"Findings": findings}, batch_import)
    assert not report.has_errors(), report.generate_report()
    broken = dict(findings[0])
    del broken["ProductArn"]
    assert validator.validate({"Findings": [broken]}, batch_import).has_errors()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXFILGUARD, *args], cwd=ROOT, capture_output=True, check=False)


def test_detect_and_replay_formats(detection_finding):
    golden = (GOLDEN / "invictus-detect.jsonl").read_bytes()
    assert run("detect", "--format", "guardduty", INVICTUS).stdout == golden
    ocsf = run("detect", "--format", "ocsf", INVICTUS)
    assert ocsf.returncode == 0, ocsf.stderr
    [event] = [json.loads(line) for line in ocsf.stdout.splitlines()]
    assert event == to_ocsf(json.loads(golden)) and problems(detection_finding, event) == []
    asff = run("detect", "--format", "asff", INVICTUS)
    assert json.loads(asff.stdout)["SchemaVersion"] == "2018-10-08"
    replayed = run("replay", "--output", "-", "--format", "ocsf", INVICTUS)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == ocsf.stdout  # replay gives detect's bytes in every format


def test_replay_to_a_topic_refuses_another_format():
    result = run("replay", "--output-topic", "x", "--format", "ocsf", INVICTUS)
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert b"--format ocsf is for --output" in result.stderr


def test_notify_ocsf_appends_to_a_file(tmp_path, detection_finding):
    source = tmp_path / "findings.jsonl"
    source.write_bytes(b"".join((GOLDEN / n).read_bytes() for n in
                                ("invictus-detect.jsonl", "scenario-ipv6-outside.jsonl")))
    out = tmp_path / "ocsf.jsonl"
    result = run("notify", "ocsf", "--from-file", str(source), "--output", str(out))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["finding_info"]["uid"] for e in events] == \
        [json.loads(line)["id"] for line in source.read_text().splitlines()]
    assert all(problems(detection_finding, e) == [] for e in events)
    assert events[1]["evidences"][0]["src_endpoint"]["ip"].startswith("2a00:")


def test_an_archived_finding_is_suppressed_in_both_formats():
    finding = json.loads((GOLDEN / "scenario-suppression-rule.jsonl").read_text()
                         .splitlines()[0])
    assert finding["service"]["archived"]
    assert to_asff(finding)["Workflow"] == {"Status": "SUPPRESSED"}
    assert (to_ocsf(finding)["status_id"], to_ocsf(finding)["status"]) == (3, "Suppressed")


def test_summary_and_a_format_are_one_line_apart():
    result = run("findings", "--summary", "--format", "ocsf")
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert b"--summary prints readable lines, --format ocsf JSON: give one" in result.stderr


def responded(outcome: str) -> dict:
    """The public capture's finding with respond's note, as the worker writes it back."""
    finding = json.loads((GOLDEN / "invictus-detect.jsonl").read_text())
    role = finding["resource"]["accessKeyDetails"]["userName"]
    reasons = {"applied": f"sessions of role {role} issued before 2026-12-03T06:00:00Z denied",
               "dry-run": "dry run: --apply puts the policy"}
    return with_response(finding, Response(
        "revoke-sessions", role, finding["accountId"], outcome == "applied", outcome,
        reasons[outcome], token_issued_before="2026-12-03T06:00:00Z"))


def test_the_response_note_in_asff(batch_import):
    applied, plain = to_asff(responded("applied")), to_asff(FINDINGS[0])
    assert "Note" not in plain and not any(k.startswith("exfilguard/Response/")
                                           for k in plain["ProductFields"])
    role = responded("applied")["resource"]["accessKeyDetails"]["userName"]
    assert applied["Note"] == {
        "Text": f"applied: revoke-sessions on role {role} in account 123837392027: sessions of "
                f"role {role} issued before 2026-12-03T06:00:00Z denied",
        "UpdatedBy": "exfilguard respond", "UpdatedAt": "2026-12-03T06:00:00Z"}
    # Security Hub ignores a re-import's Note: ProductFields, which it updates, hold every field.
    fields = applied["ProductFields"]
    assert fields["exfilguard/Response/Outcome"] == "applied"
    assert fields["exfilguard/Response/Applied"] == "True"
    assert fields["exfilguard/Response/PolicyName"] == "AWSRevokeOlderSessions"
    assert fields["exfilguard/Response/TokenIssuedBefore"] == "2026-12-03T06:00:00Z"
    assert to_asff(responded("dry-run"))["Note"]["Text"].startswith("dry-run: revoke-sessions")
    report = ParamValidator().validate(
        {"Findings": [applied, to_asff(responded("dry-run"))]}, batch_import)
    assert not report.has_errors(), report.generate_report()


def test_the_response_note_in_ocsf(detection_finding):
    applied, dry = to_ocsf(responded("applied")), to_ocsf(responded("dry-run"))
    assert problems(detection_finding, applied) == [] and problems(detection_finding, dry) == []
    assert applied["comment"] == to_asff(responded("applied"))["Note"]["Text"]
    assert applied["unmapped"]["response"] == \
        responded("applied")["service"]["additionalInfo"]["response"]
    assert applied["remediation"]["desc"].startswith("Done by exfilguard respond: sessions of "
                                                     "role ")
    # A dry run did nothing: the advice stays what to do.
    assert dry["remediation"]["desc"].startswith("Revoke the instance role's active sessions")
    assert dry["comment"].startswith("dry-run: ")
    assert "comment" not in to_ocsf(FINDINGS[0])


def test_a_noted_finding_of_one_call_is_an_update():
    first = next(f for f in FINDINGS if f["service"]["count"] == 1)
    noted = with_response(first, Response("none", None, first["accountId"], False, "skipped",
                                          "the finding names no role"))
    assert to_ocsf(first)["activity_id"] == 1
    assert (to_ocsf(noted)["activity_id"], to_ocsf(noted)["type_uid"]) == (2, 200402)
    assert to_ocsf(noted)["comment"] == ("skipped: none in account "
                                         f"{first['accountId']}: the finding names no role")
    assert to_asff(noted)["Note"]["UpdatedAt"] == first["updatedAt"]  # no time of acting
