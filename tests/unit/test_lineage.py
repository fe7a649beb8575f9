"""Key lineage and console pivots in `detect`: the chain in the evidence, the depth bound, the
second look at records, and the finding's encodings carrying the chain."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from cloudtrail_builders import (  # noqa: E402
    ATTACKER_AGENT,
    api_record,
    assume_role,
    assumed_role_identity,
    at,
    issuance,
)

from streams.aws.ipranges import load_aws_ranges  # noqa: E402
from streams.core.settings import parse_config  # noqa: E402
from streams.kafka.codec import decode_finding, encode_finding, encode_finding_json  # noqa: E402
from streams.offline.run import detect  # noqa: E402
from streams.sources.files import iter_items  # noqa: E402

OWNER = "111122223333"
INSTANCE = "i-0123456789abcdef0"
ATTACKER = "45.33.32.156"
ROOT_KEY = "ASIAROOTKEY000000000"


def chain_records(hops: int) -> list[dict]:
    """The instance key issued, then ``hops`` AssumeRoles from outside, each signed with the
    key the previous one minted, then one call with the last key."""
    records = [issuance(event_id="e-issue", time=at(0), instance_id=INSTANCE,
                        access_key=ROOT_KEY)]
    signer = assumed_role_identity(account=OWNER, role="web-role", session=INSTANCE,
                                   access_key=ROOT_KEY, created=at(0), delivery="2.0")
    for hop in range(1, hops + 1):
        child = f"ASIAHOP{hop:013d}"
        records.append(assume_role(event_id=f"e-hop-{hop:02d}", time=at(hop), identity=signer,
                                   source_ip=ATTACKER, child_key=child,
                                   role_arn=f"arn:aws:iam::{OWNER}:role/r{hop}",
                                   session=f"s{hop}", user_agent=ATTACKER_AGENT))
        signer = assumed_role_identity(account=OWNER, role=f"r{hop}", session=f"s{hop}",
                                       access_key=child, created=at(hop))
    records.append(api_record(event_id="e-last", time=at(hops + 1), identity=signer,
                              source_ip=ATTACKER, api="iam:ListUsers"))
    return records


def run(tmp_path: Path, records: list[dict]) -> list[dict]:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = parse_config({})
    findings, _, _ = detect(iter_items([str(path)]), config, load_aws_ranges(config))
    return findings


def by_key(findings: list[dict]) -> dict[str, dict]:
    return {f["resource"]["accessKeyDetails"]["accessKeyId"]: f for f in findings}


def test_the_chain_names_each_parent_from_the_nearest_to_the_instance_key(tmp_path):
    findings = by_key(run(tmp_path, chain_records(3)))
    last = findings["ASIAHOP0000000000003"]
    assert last["resource"]["instanceDetails"]["instanceId"] == INSTANCE
    assert last["resource"]["accessKeyDetails"]["userName"] == "r3"
    assert last["evidence"]["derivedFrom"] == [
        {"accessKeyId": "ASIAHOP0000000000002", "eventId": "e-hop-03"},
        {"accessKeyId": "ASIAHOP0000000000001", "eventId": "e-hop-02"},
        {"accessKeyId": ROOT_KEY, "eventId": "e-hop-01"}]
    assert last["evidence"]["issuanceEventId"] == "e-hop-03"
    assert "derivedFrom" not in findings[ROOT_KEY]["evidence"]


@pytest.mark.parametrize(("hops", "followed"), [(8, True), (9, False)])
def test_chains_are_followed_eight_hops_deep(tmp_path, hops, followed):
    findings = by_key(run(tmp_path, chain_records(hops)))
    assert (f"ASIAHOP{hops:013d}" in findings) is followed
    assert f"ASIAHOP{min(hops, 8):013d}" in findings  # the eighth key's AssumeRole still counts


def test_a_key_minted_by_an_untracked_key_is_not_followed(tmp_path):
    records = chain_records(2)[2:]  # no issuance, no instance-key AssumeRole: nothing ties it
    assert run(tmp_path, records) == []


@pytest.mark.parametrize("encode", [encode_finding, encode_finding_json], ids=["avro", "json"])
def test_the_encodings_carry_the_chain_and_give_back_what_detect_wrote(tmp_path, encode):
    for finding in run(tmp_path, chain_records(2)):
        assert decode_finding(encode(finding)) == finding


class JsonTable(dict):
    """A mapping that keeps values as a Faust table does: JSON written, a fresh copy read."""

    def __setitem__(self, key, value):
        super().__setitem__(key, json.dumps(value))

    def __getitem__(self, key):
        return json.loads(super().__getitem__(key))

    def get(self, key, default=None):
        return self[key] if key in self else default

    def values(self):
        return [self[key] for key in self]


def test_a_derived_key_waiting_in_a_table_keeps_its_lineage(tmp_path):
    # The AssumeRole signed with a derived key waits for that key (its own AssumeRole comes
    # later in the input's order): the queued call must come back from JSON intact.
    from streams.core.detector import Detector, DetectorState
    from streams.offline.run import RunStats, collect_events

    records = chain_records(2)
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    events = collect_events(iter_items([str(path)]), RunStats())
    hop_two = next(e for e in events if e.event_id == "e-hop-02")
    events = [e for e in events if e is not hop_two]
    events.insert(events.index(next(e for e in events if e.event_id == "e-hop-01")), hop_two)
    config = parse_config({})
    state = DetectorState(**{name: JsonTable() for name in DetectorState.__dataclass_fields__})
    detector = Detector(config, load_aws_ranges(config), state)
    for event in events:
        detector.observe(event)
    detector.flush()
    assert set(by_key(detector.findings())) == {ROOT_KEY, "ASIAHOP0000000000001",
                                                "ASIAHOP0000000000002"}


def test_a_derived_keys_calls_that_reach_the_instance_before_its_assumerole_wait_for_it():
    """The stream's order on the instance's partition: the child key's calls come from their
    own partition once its lineage is known there, and can overtake the AssumeRole that mints
    it on the instance's own partition, whose clock other records have moved past the calls'
    time and grace. They wait for the key, as `detect` (which reads the AssumeRole first) has
    it: the thief's calls with the minted key are a finding, each counted."""
    from streams.core.detector import Detector
    from streams.core.records import decode

    folder = ROOT / "tests" / "scenarios" / "lineage-one-hop"
    lines = (folder / "records.jsonl").read_bytes().splitlines()
    config = parse_config({})
    aws = load_aws_ranges(config)
    expected, _, _ = detect(iter_items([str(folder / "records.jsonl")]), config, aws)
    child = "ASIAHOPONECHILDQ7XK2"
    later = issuance(event_id="e-other", time=at(180), instance_id="i-0fedcba9876543210",
                     access_key="ASIAOTHERINSTANCE001")  # another instance, hours later
    arrival = [decode(lines[0]), decode(lines[1]), decode(lines[2]),
               decode(json.dumps(later).encode()),
               *(decode(line, frozenset({child})) for line in lines[4:]),  # overtook it
               decode(lines[3])]
    detector = Detector(config, aws)
    for position, event in enumerate(arrival):
        detector.observe(event, position=position)
    detector.flush()
    got = {(f["resource"]["accessKeyDetails"]["accessKeyId"], f["service"]["count"])
           for f in detector.findings()}
    assert got == {(f["resource"]["accessKeyDetails"]["accessKeyId"], f["service"]["count"])
                   for f in expected}
    assert (child, 3) in got
