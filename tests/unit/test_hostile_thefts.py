"""Input shaped to hide a theft without an error (issue 11): the finding must still come out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.core.awsranges import AwsIpRanges
from streams.core.prefixes import parse_ip
from streams.core.records import ApiCall, MalformedRecord, canonical_source, decode, may_matter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cloudtrail_builders import at, call, issuance  # noqa: E402

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
TESTS = Path(__file__).resolve().parents[1]
INVICTUS = TESTS / "fixtures" / "invictus" / "CloudTrail"
SCENARIO = TESTS / "scenarios" / "many-calls-one-attacker"
NO_GEOIP = TESTS / "fixtures" / "no-geoip.yaml"
BOM = b"\xef\xbb\xbf"


def detect(*args: str) -> subprocess.CompletedProcess:
    """``exfilguard detect`` with geoip off (as the golden outputs are made) unless a config is
    given, which then says ``geoip: false`` itself."""
    config = () if "--config" in args else ("--config", str(NO_GEOIP))
    return subprocess.run([EXFILGUARD, "detect", *config, *args], capture_output=True,
                          timeout=120, check=False)


def golden(name: str) -> bytes:
    return (TESTS / "golden" / f"{name}.jsonl").read_bytes()


def invictus_records() -> list[dict]:
    return [record for path in sorted(INVICTUS.glob("*.json"))
            for record in json.loads(path.read_text())["Records"]]


def deep_record(depth: int = 1000) -> str:
    return '{"eventName": "ListBuckets", "x": ' + "[" * depth + "]" * depth + "}"


HOSTILE_RECORDS = [
    deep_record(),
    '{"eventName": "ListBuckets", "userAgent": "x\\ud800y", "eventTime": "2023-07-10T12:00:00Z"}',
    '"not an object"',
    "[1, 2]",
    '{"eventName": "AssumeRole", "broken": tru}',
]


@pytest.mark.parametrize("shape", ["s3", "array"])
def test_one_undecodable_record_costs_itself_only(tmp_path, shape):
    """The whole capture in one file, hostile records among its real ones, and a BOM."""
    records = [json.dumps(r) for r in invictus_records()]
    middle = len(records) // 2
    body = ", ".join(records[:middle] + HOSTILE_RECORDS + records[middle:])
    text = f'{{"Records": [{body}]}}' if shape == "s3" else f"[{body}]"
    path = tmp_path / "capture.json"
    path.write_bytes(BOM + text.encode())
    result = detect(str(path))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == golden("invictus-detect")
    stderr = result.stderr.decode()
    assert f"{len(records) + len(HOSTILE_RECORDS)} records" in stderr
    # The string, the list and the broken one; the lone surrogate is read (as U+FFFD) and the
    # deep one is skipped undecoded as irrelevant (a ListBuckets by no instance).
    assert "3 bad" in stderr


def test_a_bom_before_a_delivery_file_is_accepted(tmp_path):
    for path in sorted(INVICTUS.glob("*.json")):
        (tmp_path / path.name).write_bytes(BOM + path.read_bytes())
    result = detect(str(tmp_path))
    assert result.stdout == golden("invictus-detect")
    assert b" 0 bad" in result.stderr


def scenario_lines() -> list[str]:
    return (SCENARIO / "records.jsonl").read_text().splitlines()


def test_a_lone_surrogate_in_the_thiefs_user_agent_hides_nothing(tmp_path):
    lines = [line.replace("aws-cli/", "aws-cli\\ud800/") for line in scenario_lines()]
    assert any("\\ud800" in line for line in lines)
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = detect(str(path))
    findings = [json.loads(line) for line in result.stdout.splitlines()]
    want = [json.loads(line) for line in golden(f"scenario-{SCENARIO.name}").splitlines()]
    assert [f["id"] for f in findings] == [f["id"] for f in want]
    assert b" 0 bad" in result.stderr


def test_escaped_arns_in_json_lines_are_judged_as_in_a_document(tmp_path):
    """``assumed\\u002drole`` and ``\\u0069-``: the pre-filter must not drop what decodes."""
    lines = [line.replace("assumed-role", "assumed\\u002drole").replace("/i-", "/\\u0069-")
             for line in scenario_lines()]
    for line in lines:
        assert may_matter(line.encode())
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = detect(str(path))
    assert result.stdout == golden(f"scenario-{SCENARIO.name}")
    attacker_call = next(line for line in lines if "45.33.32.156" in line)
    assert isinstance(decode(attacker_call.encode()), ApiCall)  # the worker decodes alike


def test_an_ipv4_mapped_address_is_the_ipv4_address(tmp_path):
    assert canonical_source("::ffff:45.33.32.156") == "45.33.32.156"
    lines = [line.replace('"45.33.32.156"', '"::ffff:45.33.32.156"') for line in scenario_lines()]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert detect(str(path)).stdout == golden(f"scenario-{SCENARIO.name}")
    config = tmp_path / "config.yaml"
    config.write_text("geoip: false\ntrusted_ip_cidrs: ['45.33.32.0/24']\n")
    trusted = detect("--config", str(config), str(path)).stdout
    assert b"45.33.32.156" not in trusted and b"::ffff" not in trusted
    assert len(trusted.splitlines()) == len(golden(f"scenario-{SCENARIO.name}").splitlines()) - 1


def test_an_ipv4_mapped_aws_address_is_inside_aws():
    from streams.aws.ipranges import load_ip_ranges

    ranges: AwsIpRanges = load_ip_ranges()
    assert ranges.lookup("::ffff:3.225.16.109") == ranges.lookup("3.225.16.109") is not None


def test_a_zone_id_is_not_an_address():
    assert parse_ip("fe80::1%eth0") is None
    record = call(event_id="z", time=at(1), access_key="ASIAZONE",
                  instance_id="i-0123456789abcdef0", source_ip="fe80::1%eth0")
    with pytest.raises(MalformedRecord, match="neither an IP address"):
        decode(json.dumps(record).encode())


def test_equal_time_and_id_from_two_aws_addresses_do_not_depend_on_input_order(tmp_path):
    key, instance = "ASIATIEBREAK00000001", "i-0123456789abcdef0"
    first = [json.dumps(issuance(event_id="e-1", time=at(0), instance_id=instance,
                                 access_key=key))]
    tied = [json.dumps(call(event_id="", time=at(5), access_key=key, instance_id=instance,
                            source_ip=address, api="s3:ListBuckets"))
            for address in ("3.225.16.109", "44.192.0.5")]
    later = [json.dumps(call(event_id=f"e-{n}", time=at(10 + n), access_key=key,
                             instance_id=instance, source_ip=address, api="s3:ListBuckets"))
             for n, address in enumerate(("3.225.16.109", "44.192.0.5"))]
    outputs = []
    for order in (tied, tied[::-1]):
        path = tmp_path / "records.jsonl"
        path.write_text("\n".join(first + order + later) + "\n")
        result = detect(str(path))
        assert result.returncode == 0, result.stderr.decode()
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0]  # one of the two is judged a stranger's


def expired_key_records(later_issuance_hours: float) -> list[str]:
    instance, old_key = "i-0123456789abcdef0", "ASIAEXPIREDKEY000001"
    return [json.dumps(r) for r in (
        issuance(event_id="e-1", time=at(0), instance_id=instance, access_key=old_key),
        call(event_id="e-2", time=at(5), access_key=old_key, instance_id=instance,
             source_ip="45.33.32.156", api="s3:ListBuckets"),
        issuance(event_id="e-3", time=at(60 * later_issuance_hours), instance_id=instance,
                 access_key="ASIANEWKEY0000000002"))]


def test_a_finding_outlives_the_expiry_of_its_key(tmp_path):
    """Found by make fuzz: a key forgotten after expiry took its finding out of detect's output
    (and a finding made and forgotten in one step never reached the findings topic)."""
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(expired_key_records(9)) + "\n")
    result = detect(str(path))
    (finding,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert finding["service"]["action"]["awsApiCallAction"]["remoteIpDetails"][
        "ipAddressV4"] == "45.33.32.156"


def test_a_finding_made_and_retired_in_one_step_still_renders():
    from streams.aws.ipranges import load_ip_ranges
    from streams.core.detector import Detector
    from streams.core.settings import DetectionConfig

    detector = Detector(DetectionConfig(), load_ip_ranges())
    events = [decode(line.encode()) for line in expired_key_records(9)]
    changed = [fid for event in events for fid in detector.observe(event)]
    assert changed
    for fid in changed:  # what the worker publishes
        assert detector.render(fid)["id"] == fid
