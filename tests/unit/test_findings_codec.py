"""The findings topic's encodings: each round-trips a real finding, and readers take them all."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import fastavro
import pytest

from streams.errors import UserError
from streams.kafka.codec import (
    BadFinding,
    FindingCodec,
    decode_finding,
    encode_finding,
    finding_codec,
    schema_document,
)
from streams.kafka.schema_registry import SchemaRegistry, without_credentials
from streams.kafka.settings import load_kafka_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from registry_standin import RegistryStandIn  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))


@pytest.fixture(scope="module")
def finding() -> dict:
    out = subprocess.run([EXFILGUARD, "detect", str(ROOT / "tests/fixtures/invictus/CloudTrail")],
                         capture_output=True, check=True).stdout
    return json.loads(out.splitlines()[0])


def test_json_encoding_is_the_line_detect_prints(finding):
    codec = FindingCodec("json")
    payload = codec.encode(finding)
    assert json.loads(payload) == finding
    assert codec.decode(payload) == finding
    # The Avro readers and the JSON reader agree on every field.
    assert decode_finding(encode_finding(finding)) == decode_finding(payload)


def test_confluent_framing_is_magic_zero_schema_id_and_avro_body(finding):
    with RegistryStandIn() as registry:
        settings = load_kafka_settings({"findings_encoding": "confluent",
                                        "schema_registry_url": registry.url,
                                        "topic_findings": "sec-findings"}, environ={})
        codec = finding_codec(settings)
        payload = codec.encode(finding)
        assert registry.subjects == {"sec-findings-value": [1]}
        # Decoded the way any Confluent deserializer does it, without exfilguard's reader.
        assert payload[0] == 0
        schema_id = struct.unpack(">I", payload[1:5])[0]
        writer = json.loads(registry.schemas[schema_id - 1])
        body = fastavro.schemaless_reader(io.BytesIO(payload[5:]), fastavro.parse_schema(writer))
        ours = decode_finding(encode_finding(finding))
        # Evidence only some findings carry, and the response note of an answered finding, are
        # absent here; Avro readers see the fields' null.
        service = {**ours["service"], "additionalInfo": {**ours["service"]["additionalInfo"],
                                                         "response": None}}
        assert body == {**ours, "evidence": {**ours["evidence"], "derivedFrom": None,
                                             "vpcEndpointId": None}, "service": service}
        # exfilguard's reader fetches the writer's schema by id.
        reader = finding_codec(settings, writing=False)
        assert reader.decode(payload) == ours
        # Registering again answers the same id: restarts do not create versions.
        assert finding_codec(settings).schema_id == schema_id


def test_confluent_reader_resolves_a_newer_writer_schema(finding):
    """A finding written with a later schema version (one field more) reads by resolution."""
    newer = json.loads(json.dumps(schema_document()))
    newer["fields"].append({"name": "ticket", "type": ["null", "string"], "default": None})
    with RegistryStandIn() as standin:
        newer_id = SchemaRegistry(standin.url).register("findings-value", newer)
        out = io.BytesIO()
        record = {**decode_finding(encode_finding(finding)), "ticket": "SEC-1234"}
        fastavro.schemaless_writer(out, fastavro.parse_schema(newer), record)
        payload = b"\x00" + struct.pack(">I", newer_id) + out.getvalue()
        decoded = decode_finding(payload, SchemaRegistry(standin.url))
    assert decoded == decode_finding(encode_finding(finding))


def test_registry_credentials_go_in_a_header_never_in_errors():
    with RegistryStandIn(username="API-KEY", password="s3cret") as standin:
        good = SchemaRegistry(standin.url, "API-KEY", "s3cret")
        assert good.register("findings-value", schema_document()) == 1
        with pytest.raises(UserError) as refused:
            SchemaRegistry(standin.url, "API-KEY", "wrong").register("x-value", schema_document())
        assert "401" in str(refused.value) and "wrong" not in str(refused.value)
    assert without_credentials("https://key:s3cret@psrc.example:8443/x") == \
        "https://psrc.example:8443/x"


def test_unknown_schema_id_is_one_bad_message_an_unreachable_registry_stops_the_reader():
    with RegistryStandIn() as standin:
        with pytest.raises(BadFinding, match="no schema id 42"):
            decode_finding(b"\x00" + struct.pack(">I", 42) + b"\x02", SchemaRegistry(standin.url))
        url = standin.url
    with pytest.raises(UserError, match="cannot reach it"):
        decode_finding(b"\x00" + struct.pack(">I", 43) + b"\x02", SchemaRegistry(url, timeout=2))


@pytest.mark.parametrize("payload, problem", [
    (b"\x00\x00\x00\x00\x01\x02", "set kafka.schema_registry_url"),
    (b"{not json", "not a JSON finding"),
    (b'{"severity": 8}', "without a finding id"),
    (b"\xc3\x01" + b"\x00" * 8, "another finding schema"),
    (b"garbage", "neither Avro"),
])
def test_unreadable_payloads_name_their_problem(payload, problem):
    with pytest.raises(BadFinding, match=problem):
        decode_finding(payload)


@pytest.mark.parametrize("section, problem", [
    ({"findings_encoding": "protobuf"}, "is not one of avro, json, confluent"),
    ({"findings_encoding": "confluent"}, "needs kafka.schema_registry_url"),
])
def test_encoding_settings_are_checked(section, problem):
    with pytest.raises(UserError, match=problem):
        load_kafka_settings(section, environ={})


def test_encoding_from_the_environment():
    settings = load_kafka_settings({}, environ={"EXFILGUARD_FINDINGS_ENCODING": "JSON"})
    assert settings.findings_encoding == "json"
    assert finding_codec(settings).encoding == "json"


@pytest.mark.parametrize("encoding", ["avro", "json", "confluent"])
def test_a_response_note_survives_every_encoding(finding, encoding):
    noted = json.loads(json.dumps(finding))
    noted["service"]["additionalInfo"]["response"] = {
        "action": "revoke-sessions", "role": "web-role", "account": noted["accountId"],
        "policyName": "AWSRevokeOlderSessions", "tokenIssuedBefore": "2026-12-03T06:00:00Z",
        "applied": True, "outcome": "applied", "reason": "sessions denied"}
    with RegistryStandIn() as registry:
        settings = load_kafka_settings({"findings_encoding": encoding,
                                        "schema_registry_url": registry.url}, environ={})
        codec = finding_codec(settings)
        assert codec.decode(codec.encode(noted)) == noted
        assert "response" not in codec.decode(codec.encode(finding))["service"]["additionalInfo"]
