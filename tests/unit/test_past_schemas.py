"""Findings written with an earlier finding schema still read: the reader resolves them by their
single-object fingerprint against today's schema (fields added since take their defaults)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.kafka.codec import BadFinding, decode_finding, encode_finding, past_schemas

ROOT = Path(__file__).resolve().parents[2]
PAST = ROOT / "schemas" / "past"
EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
# The schema before apiCalls (issue 14, section 4) and the one before vpcEndpointId.
BEFORE_API_CALLS = "a208f8db4febda99"
BEFORE_VPC_ENDPOINT = "f10957ffb93fdd02"


def _fingerprint(document: dict) -> str:
    return fingerprint(to_parsing_canonical_form(fastavro.parse_schema(document)), "CRC-64-AVRO")


def encoded_with(document: dict, finding: dict) -> bytes:
    """What an exfilguard of that schema wrote: single-object header and body, its own."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(document), finding)
    return b"\xc3\x01" + struct.pack("<Q", int(_fingerprint(document), 16)) + out.getvalue()


@pytest.fixture(scope="module")
def finding() -> dict:
    out = subprocess.run([EXFILGUARD, "detect", str(ROOT / "tests/fixtures/invictus/CloudTrail")],
                         capture_output=True, check=True).stdout
    return json.loads(out.splitlines()[0])


def test_a_finding_written_before_api_calls_decodes_with_todays_reader(finding):
    document = json.loads((PAST / f"finding.{BEFORE_API_CALLS}.avsc").read_text())
    old = json.loads(json.dumps(finding))
    del old["service"]["additionalInfo"]["apiCalls"]
    old["evidence"].pop("vpcEndpointId", None)
    payload = encoded_with(document, old)
    assert payload[2:10] != encode_finding(finding)[2:10]  # another schema's fingerprint
    decoded = decode_finding(payload)
    assert decoded["service"]["additionalInfo"]["apiCalls"] == []  # its default
    want = json.loads(json.dumps(finding))
    want["service"]["additionalInfo"]["apiCalls"] = []
    assert decoded == want


@pytest.mark.parametrize("name", sorted(p.name for p in PAST.glob("*.avsc")))
def test_every_past_schema_is_named_by_its_fingerprint_and_read(name, finding):
    document = json.loads((PAST / name).read_text())
    assert name == f"finding.{_fingerprint(document)}.avsc"
    decoded = decode_finding(encoded_with(document, finding))
    assert decoded["id"] == finding["id"]
    assert decoded["resource"] == finding["resource"]


def test_a_schema_no_version_wrote_is_still_refused(finding):
    payload = bytearray(encode_finding(finding))
    payload[2:10] = b"\x01" * 8
    with pytest.raises(BadFinding, match="another finding schema"):
        decode_finding(bytes(payload))


def test_every_schema_in_history_is_today_or_kept_in_past():
    """A change of finding.avsc's canonical form must keep the version it replaces."""
    log = subprocess.run(["git", "log", "--format=%H", "--", "schemas/finding.avsc"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    if log.returncode != 0 or not log.stdout.strip():
        pytest.skip("no git history here")
    current = _fingerprint(json.loads((ROOT / "schemas" / "finding.avsc").read_text()))
    kept = {struct.unpack("<Q", fp)[0] for fp in past_schemas()}
    for commit in log.stdout.split():
        shown = subprocess.run(["git", "show", f"{commit}:schemas/finding.avsc"], cwd=ROOT,
                               capture_output=True, text=True, check=False)
        if shown.returncode != 0:
            continue
        document = json.loads(shown.stdout)
        if not document.get("fields"):
            continue  # the first commit's placeholder, before any finding was written
        fp = _fingerprint(document)
        assert fp == current or int(fp, 16) in kept, (
            f"{commit[:7]}'s finding schema ({fp}) is not in schemas/past/: copy it there")
