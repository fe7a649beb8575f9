"""Parsing CloudTrail into events, and the byte-level pre-filter that must never drop one."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from streams.core.records import (
    ApiCall,
    Issuance,
    MalformedRecord,
    NetworkChange,
    decode,
    may_matter,
    normalise,
)
from streams.core.times import format_time, parse_expiration, parse_time

FIXTURES = Path(__file__).parent.parent / "fixtures"


def every_fixture_record():
    for path in sorted((FIXTURES / "invictus" / "CloudTrail").glob("*.json")):
        yield from json.loads(path.read_text())["Records"]
    for path in sorted((FIXTURES / "panther").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            yield json.loads(line)["event"]


def test_prefilter_never_drops_a_record_that_matters():
    checked = mattering = 0
    for record in every_fixture_record():
        raw = msgspec.json.encode(record)
        try:
            full = normalise(record)
        except MalformedRecord:
            full = "malformed"
        try:
            fast = decode(raw)
        except MalformedRecord:
            fast = "malformed"
        assert fast == full, record.get("eventID")
        checked += 1
        mattering += full is not None
    assert checked > 3000 and mattering > 30


def test_prefilter_skips_ordinary_records():
    raw = json.dumps({"eventName": "GetObject", "userIdentity": {"type": "IAMUser",
                      "arn": "arn:aws:iam::111122223333:user/alice"}}).encode()
    assert not may_matter(raw)


ISSUANCE = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
    "eventTime": "2023-07-10T11:55:22Z", "eventSource": "sts.amazonaws.com",
    "eventName": "AssumeRole", "awsRegion": "us-east-1", "sourceIPAddress": "ec2.amazonaws.com",
    "requestParameters": {"roleArn": "arn:aws:iam::123837392027:role/app",
                          "roleSessionName": "i-0dbc91f429e48eeed"},
    "responseElements": {"credentials": {"accessKeyId": "ASIAEXAMPLEKEY000001",
                                         "expiration": "Jul 10, 2023, 6:30:22 PM"}},
    "eventID": "e1", "recipientAccountId": "123837392027",
}


def call(**overrides):
    record = {
        "userIdentity": {
            "type": "AssumedRole", "principalId": "AROAX:i-0dbc91f429e48eeed",
            "arn": "arn:aws:sts::123837392027:assumed-role/app/i-0dbc91f429e48eeed",
            "accountId": "123837392027", "accessKeyId": "ASIAEXAMPLEKEY000001",
            "sessionContext": {"ec2RoleDelivery": "2.0"}},
        "eventTime": "2023-07-10T11:57:22Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli", "eventID": "e2",
    }
    record.update(overrides)
    return record


def test_issuance_is_parsed_with_its_expiration():
    event = normalise(ISSUANCE)
    assert isinstance(event, Issuance)
    assert event.instance_id == "i-0dbc91f429e48eeed"
    assert event.account_id == "123837392027"
    assert format_time(event.expiration) == "2023-07-10T18:30:22.000Z"


def test_issuance_to_something_other_than_an_instance_is_ignored():
    record = json.loads(json.dumps(ISSUANCE))
    record["requestParameters"]["roleSessionName"] = "some-batch-job"
    assert normalise(record) is None


def test_instance_call_is_parsed():
    event = normalise(call())
    assert isinstance(event, ApiCall)
    assert (event.instance_id, event.role_name, event.ec2_role_delivery) == (
        "i-0dbc91f429e48eeed", "app", "2.0")


def test_upper_case_instance_ids_are_instance_sessions():
    record = call()
    record["userIdentity"]["arn"] = "arn:aws:sts::123837392027:assumed-role/app/I-0DBC91F429E48EEED"
    assert normalise(record).instance_id == "i-0dbc91f429e48eeed"


@pytest.mark.parametrize("arn", [
    "arn:aws:sts::123837392027:assumed-role/aws:ec2-instance/i-0dbc91f429e48eeed",
    "arn:aws:sts::123837392027:assumed-role/app/botocore-session-1690000000",
    "arn:aws:sts::123837392027:assumed-role/app/i-0dbc91f",  # 7 hex digits: not an instance
    "arn:aws:iam::123837392027:user/alice",
])
def test_sessions_that_are_not_instance_credentials(arn):
    record = call()
    record["userIdentity"]["arn"] = arn
    assert normalise(record) is None


def test_source_that_is_neither_address_nor_service_is_bad_input():
    with pytest.raises(MalformedRecord, match="neither an IP address nor an AWS service"):
        normalise(call(sourceIPAddress="<script>alert(1)</script>"))


def test_service_names_and_aws_internal_are_accepted_sources():
    assert normalise(call(sourceIPAddress="AWS Internal")).source_ip == "AWS Internal"
    assert normalise(call(sourceIPAddress="ssm.amazonaws.com")) is not None


def test_log_shipper_timestamp_is_accepted():
    record = call()
    del record["eventTime"]
    record["@timestamp"] = "2023-07-10T11:57:22.500Z"
    assert normalise(record).event_time == parse_time("2023-07-10T11:57:22.500Z")


def test_eventbridge_envelope_is_unwrapped():
    event = decode(json.dumps({"detail-type": "AWS API Call via CloudTrail",
                               "detail": call()}).encode())
    assert isinstance(event, ApiCall)


@pytest.mark.parametrize("raw, reason", [
    (b'{"eventName": "GetCallerIdentity", "userIdentity": {"arn": "arn:aws:sts::1:assumed-role/r/'
     b'i-1"', "not JSON"),
    (b'[{"eventName": "AssumeRole"}]', "must be a JSON object"),
    (json.dumps(call(eventTime="yesterday")).encode(), "eventTime"),
])
def test_malformed_records_say_why(raw, reason):
    with pytest.raises(MalformedRecord, match=reason):
        decode(raw)


def test_oversized_record_is_rejected():
    with pytest.raises(MalformedRecord, match="exceeds"):
        decode(b'{"x": "' + b"a" * (2 << 20) + b'"}')


def test_address_changes_are_read_wherever_the_ip_is():
    record = {
        "eventName": "CreateNatGateway", "eventSource": "ec2.amazonaws.com",
        "eventTime": "2024-01-01T00:00:00Z", "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser"},
        "responseElements": {"CreateNatGatewayResponse": {"natGateway": {
            "natGatewayAddressSet": {"item": [{"publicIp": "3.225.16.109",
                                               "allocationId": "eipalloc-1"}]}}}},
    }
    event = normalise(record)
    assert isinstance(event, NetworkChange)
    assert event.public_ips == ("3.225.16.109",)
    assert event.allocation_ids == ("eipalloc-1",)


@pytest.mark.parametrize("text, expected", [
    ("Jul 10, 2023, 6:30:22 PM", "2023-07-10T18:30:22.000Z"),
    ("2023-07-10T18:30:22Z", "2023-07-10T18:30:22.000Z"),
    (1688992222000, "2023-07-10T12:30:22.000Z"),
])
def test_expiration_formats(text, expected):
    assert format_time(parse_expiration(text)) == expected


def test_unknown_expiration_is_none_not_a_guess():
    assert parse_expiration("soon") is None


@pytest.mark.parametrize("raw, matters", [
    (b'{"eventName" :\n "AllocateAddress"}', True),
    (b'{"additionalEventData": {"eventName": "X"}, "eventName": "AssumeRole"}', True),
    (b'{"eventName": "AssumeRoleWithWebIdentity"}', False),
    (b'{"userIdentity": {"arn": "arn:aws:sts::1:assumed-role\\/r\\/i-0123abcd"}}', True),
    (b'{"eventName": "GetObject", "userAgent": "AssumeRole"}', False),
])
def test_prefilter_reads_event_names_and_instance_arns(raw, matters):
    assert may_matter(raw) is matters


def test_usual_expirations_read_as_strptime_reads_them():
    import random
    from datetime import UTC, datetime

    from streams.core.times import _EXPIRATION_FORMATS, _usual_expiration

    def by_strptime(value: str) -> int | None:
        for fmt in _EXPIRATION_FORMATS:
            try:
                return int(datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp() * 1000)
            except (ValueError, OverflowError):
                continue
        return None

    rng = random.Random(5)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec", "Foo", "mar"]
    values = ["Jul 10, 2023, 6:30:22 PM", "Jan 1, 2024, 12:00:00 AM", "Jan 1, 2024 12:59:59 PM",
              "Feb 29, 2024, 1:00:00 AM", "Feb 29, 2023, 1:00:00 AM", "Dec 31, 9999, 11:59:59 PM",
              "Jan 1, 0001, 12:00:00 AM", "Jan 1, 0000, 1:00:00 AM", "Mar 01, 2024, 01:02:03 am"]
    for _ in range(3000):
        values.append(f"{rng.choice(months)} {rng.randrange(0, 40)}, {rng.randrange(1990, 2040)}"
                      f"{rng.choice([',', ''])} {rng.randrange(0, 15)}:{rng.randrange(0, 70):02d}:"
                      f"{rng.randrange(0, 65):02d} {rng.choice(['AM', 'PM', 'XM'])}")
    for value in values:
        usual = _usual_expiration(value)
        if usual is not None:
            assert usual == by_strptime(value), value
        assert parse_expiration(value) == by_strptime(value), value
