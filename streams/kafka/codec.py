"""Findings as Avro single-object encoding (``C3 01``, the schema's fingerprint, the body), so a
consumer can check it holds the writer's schema; ``schemas/finding.avsc`` is the one schema."""

from __future__ import annotations

import io
import json
import struct
from functools import lru_cache
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"


class BadFinding(ValueError):
    """Bytes that are not a finding in this schema."""


@lru_cache(maxsize=1)
def finding_schema() -> Any:
    text = resources.files("streams.schemas").joinpath("finding.avsc").read_text("utf-8")
    return fastavro.parse_schema(json.loads(text))


@lru_cache(maxsize=1)
def _fingerprint() -> bytes:
    digest = fingerprint(to_parsing_canonical_form(finding_schema()), "CRC-64-AVRO")
    return struct.pack("<Q", int(digest, 16))


def encode_finding(finding: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(_fingerprint())
    fastavro.schemaless_writer(out, finding_schema(), finding)
    return out.getvalue()


def decode_finding(payload: bytes) -> dict[str, Any]:
    if payload[:2] != MAGIC:
        raise BadFinding("not Avro single-object encoding (no C3 01 marker)")
    if payload[2:10] != _fingerprint():
        raise BadFinding("written with another finding schema (fingerprint differs); upgrade "
                         "exfilguard to read it")
    try:
        return fastavro.schemaless_reader(io.BytesIO(payload[10:]), finding_schema(), None)
    except Exception as exc:  # fastavro raises several types on truncated input
        raise BadFinding(f"corrupt finding: {exc}") from None
