"""The forwarder's fast path: a record about no instance is timed and routed from its envelope,
never decoded whole; it must go out exactly as the full decode would send it, and every record
the full decode finds about an instance must take the full decode."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import pytest

from streams.core.records import decode_record
from streams.kafka.forwarder import (
    ForwardStats,
    decoded_outgoing,
    messages,
    sorted_batches,
    undecoded_outgoing,
)
from streams.sources.files import Lines, Record, iter_items, split_document

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS.parent))
from bench.generator import Generator  # noqa: E402

IDENTITY = {"type": "AssumedRole", "accessKeyId": "ASIAEXAMPLEKEY000001",
            "arn": "arn:aws:sts::111122223333:assumed-role/web/i-0123456789abcdef0"}


def odd_records() -> list[bytes]:
    """Shapes a byte scan or a partial decode could get wrong."""
    base = {"eventVersion": "1.08", "eventTime": "2024-01-01T00:00:00Z", "eventID": "e-1",
            "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
            "sourceIPAddress": "203.0.113.9", "userIdentity": IDENTITY}

    def enc(**changes):
        return msgspec.json.encode({**base, **changes})

    return [
        enc(),  # an instance's call: must be decoded
        enc(userIdentity={**IDENTITY, "arn": IDENTITY["arn"].upper()}),
        enc(userIdentity={**IDENTITY, "arn": "arn:aws:sts::111122223333:assumed-role/web/me"}),
        # Escapes hide names from a byte scan, not from a decode.
        enc().replace(b"assumed-role/web/i-", b"assumed-role\\/web\\/\\u0069-"),
        enc(eventName="AssumeRole").replace(b'"AssumeRole"', b'"Assume\\u0052ole"'),
        enc(eventName="StartInstances", eventSource="ec2.amazonaws.com",
            userIdentity={"type": "IAMUser", "accessKeyId": "AKIAUSER"}),
        enc(eventName="StartInstances").replace(b'"StartInstances"', b'"Start\\u0049nstances"'),
        enc(userIdentity={"type": "IAMUser", "accessKeyId": "AKIAUSER"}),
        enc(userIdentity="not an object"),
        enc(userIdentity=None),
        enc(userIdentity={"type": "IAMUser", "accessKeyId": ["a list"]}),
        enc(eventTime=12),
        enc(eventTime="yesterday"),
        enc(eventTime=None, **{"@timestamp": "2024-01-01T00:00:01Z"}),
        msgspec.json.encode({"detail": {**base, "userIdentity": {"accessKeyId": "AKIAUSER"}},
                             "source": "aws.s3"}),  # EventBridge
        b'{"eventName": "GetObject", "eventName": "AssumeRole", "userIdentity": {}}',
        b'{"eventName": "GetObject", "eventTime": "2024-01-01T00:00:00Z", "x": "caf\xc3\xa9"}',
        b'{"eventName": "GetObject", "x": "\xff\xfe"}',  # not UTF-8
        b'{"eventName": "GetObject", "x": [1,}',
        b'{"eventName": "GetObject"} trailing',
        b"[1, 2]",
        b'{"eventName": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    ]


def every_record() -> list[bytes]:
    lines = []
    for path in sorted(TESTS.glob("scenarios/*/records.jsonl")):
        lines += [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
    for path in sorted((TESTS / "fixtures").rglob("*.json")):
        lines += [item.as_bytes() for item in split_document(path.read_bytes(), str(path))
                  if isinstance(item, Record)]
    lines += list(Generator(3).records(20_000))
    return lines + odd_records()


def test_a_record_sent_undecoded_goes_out_as_the_full_decode_sends_it():
    fast = 0
    for raw in every_record():
        full = decoded_outgoing(Record("f:1", raw=raw), ForwardStats())
        outgoing = undecoded_outgoing(raw)
        if outgoing is None:
            continue
        fast += 1
        assert outgoing == full, raw[:300]
        assert outgoing.event is None
        try:
            assert decode_record(raw)[0] is None, raw[:300]  # the worker judges it irrelevant
        except ValueError:
            pass  # or rejects it: also judged by nobody
    assert fast > 15_000  # the fast path is the usual one


def test_every_record_about_an_instance_takes_the_full_decode():
    about = 0
    for raw in every_record():
        full = decoded_outgoing(Record("f:1", raw=raw), ForwardStats())
        if full is not None and full.event is not None:
            about += 1
            assert undecoded_outgoing(raw) is None, raw[:300]
    assert about > 500


@pytest.mark.parametrize("partitions,batch_records", [(1, 500), (3, 500), (3, 1), (8, 7)])
def test_lines_read_in_runs_are_forwarded_as_records_read_one_by_one(tmp_path, partitions,
                                                                     batch_records):
    messy = tmp_path / "messy.jsonl"
    scenario = (TESTS / "scenarios" / "hostile-lines" / "records.jsonl").read_bytes()
    messy.write_bytes(b"\n" + scenario + b"\n  \nnot json\n" + b"\n".join(odd_records())
                      + b"  \r\n[1]\n")
    paths = sorted(str(p) for p in TESTS.glob("scenarios/*/records.jsonl")) + [str(messy)]
    runs, one_by_one = ForwardStats(), ForwardStats()
    want = list(messages(sorted_batches(iter_items(paths), one_by_one), partitions,
                         batch_records))
    items = list(iter_items(paths, runs=True))
    assert any(isinstance(item, Lines) for item in items)
    got = list(messages(sorted_batches(items, runs), partitions, batch_records))
    assert got == want
    assert runs == one_by_one  # the same counts and the same skipped lines, in order
    assert runs.skipped_count >= 4
