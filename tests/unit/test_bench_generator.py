"""The benchmark's CloudTrail generator: deterministic, realistic sizes, the organisation's mix
(about 5% instance-credential records), and thefts the detector finds."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.generator import (  # noqa: E402
    MAX_BYTES,
    MIN_BYTES,
    Generator,
    credential,
    encode,
    ids_for,
    issuance_record,
    issuances,
    theft_record,
)
from streams.aws.ipranges import load_aws_ranges
from streams.config.loader import load_config  # noqa: E402
from streams.core.finding_types import OUTSIDE_AWS  # noqa: E402
from streams.core.records import ApiCall, Issuance, decode, normalise, unwrap  # noqa: E402
from streams.core.times import parse_time  # noqa: E402
from streams.offline.run import detect  # noqa: E402
from streams.sources.files import Record  # noqa: E402

SAMPLE = 20_000


def test_same_seed_same_bytes_other_seed_other_bytes():
    assert Generator(3).jsonl(2_000) == Generator(3).jsonl(2_000)
    assert Generator(3).jsonl(200) != Generator(4).jsonl(200)


def test_a_shorter_run_is_a_prefix_of_a_longer_one():
    longer = list(Generator(5).records(1_500))
    assert list(Generator(5).records(1_000)) == longer[:1_000]
    assert list(Generator(5).records(1_500, start=1_200)) == longer[1_200:]


def test_records_are_cloudtrail_objects_of_realistic_size():
    lines = Generator(1).jsonl(SAMPLE).splitlines()
    assert len(lines) == SAMPLE
    sizes = [len(line) for line in lines]
    assert min(sizes) >= MIN_BYTES and max(sizes) <= MAX_BYTES
    assert 1_500 < sum(sizes) / len(sizes) < 1_700  # spread over the range, not piled at an end
    for line in lines[:2_000]:
        record = msgspec.json.decode(line)
        assert isinstance(record["eventName"], str) and record["eventName"]
        assert isinstance(record["userIdentity"], dict)
        parse_time(record["eventTime"])


def test_about_five_percent_concern_instance_credentials():
    kinds: Counter[str] = Counter()
    for line in Generator(1).records(SAMPLE):
        kinds[type(normalise(unwrap(msgspec.json.decode(line)))).__name__] += 1
    instance_share = (kinds["Issuance"] + kinds["ApiCall"]) / SAMPLE
    assert 0.04 <= instance_share <= 0.06, kinds
    assert kinds["Issuance"] > 0.005 * SAMPLE and kinds["ApiCall"] > 0.02 * SAMPLE
    # The byte-level pre-filter must not be able to tell the mix apart by accident: some
    # irrelevant records carry its markers too (non-instance AssumeRole, instance/i-… ARNs).
    assert sum(decode(line) is None for line in Generator(1).records(2_000)) > 0.9 * 2_000


def test_the_state_benchmarks_credentials_are_distinct_issuances():
    seen_keys, seen_instances = set(), set()
    for key, raw in issuances(500, seed=7):
        event = decode(raw)
        assert isinstance(event, Issuance)
        assert event.instance_id.encode() == key
        assert MIN_BYTES <= len(raw) <= MAX_BYTES
        seen_keys.add(event.access_key_id)
        seen_instances.add(event.instance_id)
    assert len(seen_keys) == len(seen_instances) == 500
    assert credential(3, seed=7) == credential(3, seed=7)


def test_an_injected_theft_is_found_outside_aws():
    c = credential(0, seed=11)
    ids = ids_for(11)
    issued = issuance_record(ids, 1709251200, c.instance_id, c.key, c.role, c.account,
                             c.role_id)
    stolen = theft_record(ids, 1709251260, c.instance_id, c.key, c.role, c.account, c.role_id,
                          "203.0.113.9")
    assert isinstance(decode(encode(stolen)), ApiCall)
    loaded = load_config(None)
    items = [Record("issued", raw=encode(issued)), Record("stolen", raw=encode(stolen))]
    findings, _, _ = detect(items, loaded.detection, load_aws_ranges(loaded.detection))
    assert [f["type"] for f in findings] == [OUTSIDE_AWS]
