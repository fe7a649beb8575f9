"""The forwarder's fast route (``envelope_outgoing``: the envelope decoded, the record not built)
against the full decode's (every record decoded and normalised): over the scenarios, the public
captures in tests/fixtures, generated records and fuzzed files, the same messages reach the same
partitions, and no record the full decode finds about an instance is routed undecoded."""

from __future__ import annotations

import random
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import msgspec
import pytest

from streams.kafka import forwarder
from streams.kafka.forwarder import (
    ForwardStats,
    decoded_outgoing,
    messages,
    sorted_batches,
    undecoded_outgoing,
)
from streams.kafka.routing import partitions_of
from streams.sources.files import Record, iter_items

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))
import fuzzing  # noqa: E402

from bench.generator import Generator  # noqa: E402

SIGNER = "ASIASIGNER0000000001"
CHILD = "ASIACHILD00000000001"


def assume_roles() -> list[bytes]:
    """AssumeRoles in the shapes that decide their route: who invoked it, who signed it, what it
    minted, whether it failed."""
    base = {"eventVersion": "1.08", "eventTime": "2024-01-01T00:00:00Z", "eventID": "e-2",
            "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
            "sourceIPAddress": "203.0.113.9",
            "userIdentity": {"type": "AssumedRole", "accessKeyId": SIGNER,
                             "arn": "arn:aws:sts::111122223333:assumed-role/ci/job-1"},
            "requestParameters": {"roleArn": "arn:aws:iam::111122223333:role/deploy",
                                  "roleSessionName": "deploy"},
            "responseElements": {"credentials": {"accessKeyId": CHILD,
                                                 "expiration": "Jan 1, 2024, 1:00:00 AM"}}}
    shapes = [
        {},
        {"errorCode": "AccessDenied"},
        {"errorCode": ""},
        {"responseElements": None},
        {"responseElements": {"credentials": None}},
        {"responseElements": {"credentials": {"accessKeyId": ""}}},
        {"responseElements": {"credentials": {"accessKeyId": SIGNER}}},
        {"responseElements": {"credentials": {"accessKeyId": 7}}},
        {"responseElements": {"credentials": "a string"}},
        {"responseElements": "a string"},
        {"userIdentity": {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}},
        {"userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}},
        {"userIdentity": {"invokedBy": "ec2.amazonaws.com", "accessKeyId": SIGNER},
         "requestParameters": {"roleSessionName": "i-0123456789abcdef0"}},
        {"userIdentity": {"accessKeyId": SIGNER,
                          "arn": "arn:aws:sts::111122223333:assumed-role/web/i-0123456789abcdef0"}},
        {"userIdentity": {"accessKeyId": ""}},
        {"userIdentity": None},
    ]
    records = [msgspec.json.encode({**base, **shape}) for shape in shapes]
    # The same with the name escaped, and with a duplicate name after it.
    records.append(records[0].replace(b'"AssumeRole"', b'"Assume\\u0052ole"'))
    records.append(records[0][:-1] + b',"eventName":"GetObject"}')
    records.append(msgspec.json.encode({**base, "eventName": "GetObject"})[:-1]
                   + b',"eventName":"AssumeRole"}')
    return records


def fuzzed(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    corpus = fuzzing.corpus()
    found = []
    for _ in range(count):
        record = rng.choice(corpus)
        try:
            found.append(fuzzing.encode(fuzzing.mutate(record, rng), rng))
        except (ValueError, RecursionError):
            continue
    return found


def every_record() -> list[bytes]:
    lines = []
    for path in sorted(TESTS.glob("scenarios/*/records.jsonl")):
        lines += [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
    lines += [msgspec.json.encode(record) for record in fuzzing.corpus()]  # the captures
    lines += list(Generator(5).records(10_000))
    return lines + assume_roles() + fuzzed(6000, seed=21)


def test_a_record_routed_from_its_envelope_goes_where_the_full_decode_sends_it():
    fast = assume_roles_fast = 0
    for raw in every_record():
        outgoing = undecoded_outgoing(raw)
        full = decoded_outgoing(Record("f:1", raw=raw), ForwardStats())
        if outgoing is None:
            continue
        fast += 1
        assume_roles_fast += b"AssumeRole" in raw and len(outgoing.route.keys) == 2
        assert full is not None and full.event is None, raw[:300]
        assert outgoing == full, raw[:300]
    assert fast > 9000  # the fast route is the usual one
    assert assume_roles_fast > 0  # a minted key's copy is made on the fast route too


def test_every_record_about_an_instance_takes_the_full_decode():
    about = 0
    for raw in every_record():
        full = decoded_outgoing(Record("f:1", raw=raw), ForwardStats())
        if full is not None and full.event is not None:
            about += 1
            assert undecoded_outgoing(raw) is None, raw[:300]
    assert about > 300


def fuzzed_files(folder: Path, count: int, seed: int) -> list[str]:
    """Files in every shape the fuzzer makes (JSON Lines, S3 delivery documents, arrays, gzip,
    a BOM, cut short), with the hostile and the AssumeRole records besides."""
    paths = []
    for index, (payload, _) in enumerate(islice(fuzzing.inputs(seed), count)):
        path = folder / f"fuzzed-{index:04d}.json"
        path.write_bytes(payload)
        paths.append(str(path))
    extra = folder / "assume-roles.jsonl"
    extra.write_bytes(b"\n".join(assume_roles()) + b"\n\xef\xbb\xbfnot json\n")
    return paths + [str(extra)]


def routed(paths: list[str], partitions: int, batch_records: int) -> tuple[list, ForwardStats]:
    stats = ForwardStats()
    return list(messages(sorted_batches(iter_items(paths, runs=True), stats), partitions,
                         batch_records)), stats


@pytest.mark.parametrize("partitions,batch_records", [(1, 500), (4, 500), (7, 3), (4, 1)])
def test_the_fast_route_sends_the_messages_the_full_decode_sends(tmp_path, monkeypatch,
                                                                  partitions, batch_records):
    paths = sorted(str(p) for p in TESTS.glob("scenarios/*/records.jsonl"))
    paths += sorted(str(p) for p in (TESTS / "fixtures").rglob("*.json*"))
    generated = tmp_path / "generated.jsonl"
    generated.write_bytes(b"\n".join(Generator(9).records(8000)) + b"\n")
    paths += [str(generated)] + fuzzed_files(tmp_path, 300, seed=17)
    fast, fast_stats = routed(paths, partitions, batch_records)
    # The full decode's route: the same forwarder with the envelope settling nothing.
    monkeypatch.setattr(forwarder, "envelope_outgoing", lambda lines: [None] * len(lines))
    full, full_stats = routed(paths, partitions, batch_records)
    assert fast == full
    assert fast_stats == full_stats  # the same records counted, the same skipped, in order
    assert fast_stats.records > 8000 and fast_stats.skipped_count > 50


def test_each_record_lands_on_the_partitions_of_its_route(tmp_path):
    # Independent of the batches: every record once on each partition its full-decode route
    # names (a record with no key on one partition, in turn).
    path = tmp_path / "generated.jsonl"
    path.write_bytes(b"\n".join(Generator(4).records(5000) ) + b"\n")
    paths = [str(path)] + sorted(str(p) for p in TESTS.glob("scenarios/*/records.jsonl"))
    partitions = 5
    sent, _ = routed(paths, partitions, 50)
    landed = Counter((m.partition, line) for m in sent for line in m.value.split(b"\n"))
    expected: Counter = Counter()
    spread = 0
    for batch in sorted_batches(iter_items(paths), ForwardStats()):
        for outgoing in batch:
            full = decoded_outgoing(Record("f:1", raw=outgoing.payload), ForwardStats())
            targets = partitions_of(full.route, partitions)
            if not targets:
                targets, spread = {spread % partitions}, spread + 1
            for partition in targets:
                expected[(partition, outgoing.payload.replace(b"\n", b" "))] += 1
    assert landed == expected
