"""The findings topic's value encodings: Avro single-object, Confluent framing, plain JSON.

``avro`` (the default) is Avro single-object encoding (``C3 01``, schema fingerprint, body);
``confluent`` is the Schema Registry wire format (``00``, 4-byte schema id, body) that Kafka
Connect and SIEM sinks decode; ``json`` is one JSON object. Readers take any of the three.
"""

from __future__ import annotations

import io
import json
import struct
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import fastavro
import msgspec
from fastavro.schema import fingerprint, to_parsing_canonical_form

if TYPE_CHECKING:
    from streams.kafka.schema_registry import SchemaRegistry
    from streams.kafka.settings import KafkaSettings

MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
ENCODINGS = ("avro", "json", "confluent")

_json = msgspec.json.Encoder(order="deterministic")


class BadFinding(ValueError):
    """Bytes that are not a finding in this schema."""


@lru_cache(maxsize=1)
def schema_document() -> dict[str, Any]:
    text = resources.files("streams.schemas").joinpath("finding.avsc").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def finding_schema() -> Any:
    return fastavro.parse_schema(schema_document())


def _fingerprint_of(schema: Any) -> bytes:
    digest = fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    return struct.pack("<Q", int(digest, 16))


@lru_cache(maxsize=1)
def _fingerprint() -> bytes:
    return _fingerprint_of(finding_schema())


@lru_cache(maxsize=1)
def past_schemas() -> dict[bytes, Any]:
    """Every finding schema exfilguard wrote before today's (schemas/past/), by fingerprint: a
    finding they wrote is read through schema resolution, new fields taking their defaults."""
    folder = resources.files("streams.schemas").joinpath("past")
    schemas = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".avsc"):
            schema = fastavro.parse_schema(json.loads(entry.read_text("utf-8")))
            schemas[_fingerprint_of(schema)] = schema
    return schemas


def _body(finding: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, finding_schema(), finding)
    return out.getvalue()


def encode_finding(finding: dict[str, Any]) -> bytes:
    return MAGIC + _fingerprint() + _body(finding)


def encode_finding_json(finding: dict[str, Any]) -> bytes:
    # Keys in a fixed order, as `exfilguard detect` writes them: equal findings, equal bytes.
    return _json.encode(finding)


def encode_finding_confluent(finding: dict[str, Any], schema_id: int) -> bytes:
    return CONFLUENT_MAGIC + struct.pack(">I", schema_id) + _body(finding)


# Evidence fields present only on the findings they concern (Avro: null elsewhere).
EVIDENCE_WHEN_SET = ("derivedFrom", "vpcEndpointId")


def _read(body: bytes, writer: Any) -> dict[str, Any]:
    try:
        finding = fastavro.schemaless_reader(io.BytesIO(body), writer, finding_schema())
    except Exception as exc:  # fastavro raises several types on truncated input
        raise BadFinding(f"corrupt finding: {exc}") from None
    evidence = finding.get("evidence") if isinstance(finding, dict) else None
    for name in EVIDENCE_WHEN_SET:  # absent from the findings they do not concern, as detect
        if isinstance(evidence, dict) and evidence.get(name, ()) is None:  # writes them
            del evidence[name]
    info = (finding.get("service") or {}).get("additionalInfo") if isinstance(finding, dict) \
        else None
    if isinstance(info, dict) and info.get("response", ()) is None:  # only an answered finding
        del info["response"]                                        # carries a response note
    return finding


def decode_finding(payload: bytes, registry: SchemaRegistry | None = None) -> dict[str, Any]:
    """A finding in any of the encodings; Confluent framing needs the registry of its id."""
    if payload[:2] == MAGIC:
        if payload[2:10] == _fingerprint():
            return _read(payload[10:], finding_schema())
        writer = past_schemas().get(payload[2:10])
        if writer is None:
            raise BadFinding("written with another finding schema (fingerprint differs); "
                             "upgrade exfilguard to read it")
        return _read(payload[10:], writer)
    if payload[:1] == b"{":
        try:
            finding = msgspec.json.decode(payload)
        except msgspec.DecodeError as exc:
            raise BadFinding(f"not a JSON finding: {exc}") from None
        if not isinstance(finding, dict) or "id" not in finding:
            raise BadFinding("a JSON object without a finding id")
        return finding
    if payload[:1] == CONFLUENT_MAGIC and len(payload) >= 5:
        schema_id = struct.unpack(">I", payload[1:5])[0]
        if registry is None:
            raise BadFinding(f"Confluent-framed (schema id {schema_id}): set "
                             "kafka.schema_registry_url to read it")
        return _read(payload[5:], _writer_schema(registry, schema_id))
    raise BadFinding("neither Avro single-object (C3 01), Confluent-framed (00) nor JSON")


_writers: dict[tuple[str, int], Any] = {}  # (registry, schema id) → parsed writer schema


def _writer_schema(registry: SchemaRegistry, schema_id: int) -> Any:
    # An unreachable registry raises UserError and stops the reader (nothing is skipped);
    # an id it does not hold makes only this message unreadable.
    key = (registry.url, schema_id)
    if key in _writers:
        return _writers[key]
    try:
        _writers[key] = fastavro.parse_schema(registry.schema(schema_id))
        return _writers[key]
    except LookupError as exc:
        raise BadFinding(str(exc)) from None
    except fastavro.schema.SchemaParseException as exc:
        raise BadFinding(f"schema id {schema_id} is not an Avro schema: {exc}") from None


class FindingCodec:
    """Encodes findings as the config says and reads every encoding back."""

    def __init__(self, encoding: str = "avro", registry: SchemaRegistry | None = None,
                 schema_id: int | None = None) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown findings encoding {encoding!r}")
        if encoding == "confluent" and registry is None:
            raise ValueError("the confluent encoding needs a schema registry")
        self.encoding = encoding
        self.registry = registry
        self.schema_id = schema_id

    def encode(self, finding: dict[str, Any]) -> bytes:
        if self.encoding == "json":
            return encode_finding_json(finding)
        if self.encoding == "confluent":
            if self.schema_id is None:
                raise ValueError("a reading codec has no schema id to write with")
            return encode_finding_confluent(finding, self.schema_id)
        return encode_finding(finding)

    def decode(self, payload: bytes) -> dict[str, Any]:
        return decode_finding(payload, self.registry)


def subject_for(topic: str) -> str:
    """The Schema Registry subject of a topic's values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


def finding_codec(settings: KafkaSettings, topic: str | None = None,
                  writing: bool = True) -> FindingCodec:
    """The codec for ``topic`` (default: the findings topic); a writer registers the schema."""
    from streams.kafka.schema_registry import SchemaRegistry

    registry = None
    if settings.schema_registry_url:  # settings checks confluent comes with a URL
        registry = SchemaRegistry(settings.schema_registry_url,
                                  settings.schema_registry_username,
                                  settings.schema_registry_password)
    schema_id = None
    if settings.findings_encoding == "confluent" and writing:
        schema_id = registry.register(subject_for(topic or settings.topic_findings),
                                      schema_document())
    return FindingCodec(settings.findings_encoding, registry, schema_id)
