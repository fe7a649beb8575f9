"""service.additionalInfo.apiCalls: what was done with the key from the remote address, by name,
most frequent first, bounded, with error codes and the sensitive calls flagged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from cloudtrail_builders import ATTACKER_AGENT, at, call, issuance  # noqa: E402

from streams.aws.ipranges import load_aws_ranges  # noqa: E402
from streams.core.findings import API_CALLS_SHOWN  # noqa: E402
from streams.core.settings import parse_config  # noqa: E402
from streams.kafka.codec import decode_finding, encode_finding  # noqa: E402
from streams.offline.run import detect  # noqa: E402
from streams.sources.files import iter_items  # noqa: E402

INSTANCE = "i-0123456789abcdef0"
KEY = "ASIAAPICALLS00000000"
ATTACKER = "45.33.32.156"


def thief_calls(apis: list[tuple[str, str | None]]) -> list[dict]:
    records = [issuance(event_id="e-000", time=at(0), instance_id=INSTANCE, access_key=KEY)]
    for n, (api, error) in enumerate(apis, start=1):
        record = call(event_id=f"e-{n:03d}", time=at(1, n), access_key=KEY, instance_id=INSTANCE,
                      source_ip=ATTACKER, api=api, user_agent=ATTACKER_AGENT)
        if error:
            record["errorCode"] = error
        records.append(record)
    return records


def only_finding(tmp_path: Path, records: list[dict]) -> dict:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = parse_config({})
    findings, _, _ = detect(iter_items([str(path)]), config, load_aws_ranges(config))
    assert len(findings) == 1
    return findings[0]


def test_calls_are_counted_by_name_with_their_errors_and_the_sensitive_flagged(tmp_path):
    finding = only_finding(tmp_path, thief_calls([
        ("sts:GetCallerIdentity", None), ("secretsmanager:GetSecretValue", "AccessDenied"),
        ("secretsmanager:GetSecretValue", None), ("iam:ListRoles", None),
        ("iam:CreateAccessKey", None), ("secretsmanager:GetSecretValue", "AccessDenied")]))
    calls = finding["service"]["additionalInfo"]["apiCalls"]
    assert [(c["name"], c["count"], c["errorCodes"], c["sensitive"]) for c in calls] == [
        ("GetSecretValue", 3, {"AccessDenied": 2}, True),
        ("CreateAccessKey", 1, {}, True),  # an IAM write
        ("GetCallerIdentity", 1, {}, False),
        ("ListRoles", 1, {}, False)]
    secret = calls[0]
    assert (secret["serviceName"], secret["firstSeen"], secret["lastSeen"]) == (
        "secretsmanager", "2024-03-01T10:01:02.000Z", "2024-03-01T10:01:06.000Z")
    assert sum(c["count"] for c in calls) == finding["service"]["count"]


def test_the_most_frequent_are_shown_and_the_avro_encoding_keeps_them(tmp_path):
    apis = [(f"ec2:Describe{n:02d}", None) for n in range(30) for _ in range(1 + n % 3)]
    finding = only_finding(tmp_path, thief_calls(apis))
    calls = finding["service"]["additionalInfo"]["apiCalls"]
    assert len(calls) == API_CALLS_SHOWN
    assert [c["count"] for c in calls] == sorted((c["count"] for c in calls), reverse=True)
    assert calls[0]["name"] == "Describe02"  # of the most frequent (3 each), first by name
    assert decode_finding(encode_finding(finding)) == finding


def test_the_summary_line_names_what_the_key_did(tmp_path):
    from streams.cli.findings import summary

    finding = only_finding(tmp_path, thief_calls([
        ("secretsmanager:GetSecretValue", "AccessDenied"), ("secretsmanager:GetSecretValue", None),
        ("sts:GetCallerIdentity", None)]))
    line = summary(finding)
    assert ("calls: secretsmanager:GetSecretValue x2 (sensitive, AccessDenied x1), "
            "sts:GetCallerIdentity x1;") in line
    assert line.endswith(f"account {finding['accountId']} id {finding['id']}")


def test_a_derived_keys_summary_names_the_instance_key_it_came_from():
    from streams.cli.findings import summary

    golden = ROOT / "tests" / "golden" / "scenario-lineage-two-hops.jsonl"
    lines = [summary(json.loads(line)) for line in golden.read_text().splitlines()]
    derived = [line for line in lines if "ASIAHOPTWOSECONDQ7XK used" in line]
    assert derived and "derived from ASIAHOPTWOQ7XK2MZ5RB in 2 hop(s);" in derived[0]


def test_the_backtest_report_lists_what_each_key_did(tmp_path):
    import subprocess

    mixed = ROOT / "tests" / "fixtures" / "labels" / "mixed"
    exfilguard = str(Path(sys.executable).with_name("exfilguard"))
    run = subprocess.run([exfilguard, "backtest", "--labels", str(mixed / "labels.csv"),
                          "--report", str(tmp_path), str(mixed / "records.jsonl")],
                         capture_output=True, check=False)
    assert run.returncode == 0, run.stderr.decode()
    html = (tmp_path / "report.html").read_text()
    section = html.split("<h2>What each key did</h2>", 1)[1].split("<h2>", 1)[0]
    assert 'class="calls"' in section
    detected = subprocess.run([exfilguard, "detect", str(mixed / "records.jsonl")],
                              capture_output=True, check=True).stdout.splitlines()
    assert section.count("<tr>") - 1 == len(detected)  # a row per finding, under the header
    for line in detected:
        finding = json.loads(line)
        assert f"<code>{finding['id']}</code>" in section
        first = finding["service"]["additionalInfo"]["apiCalls"][0]
        assert f"{first['serviceName']}:{first['name']} ×{first['count']}" in section
