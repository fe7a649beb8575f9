"""Records and files made to crash a run (issue 11): each costs itself, never the run's findings."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.core.findings import render
from streams.core.records import MalformedRecord, NetworkChange, decode
from streams.core.settings import DetectionConfig
from streams.core.times import MAX_MS, format_time

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "many-calls-one-attacker"
NO_GEOIP = Path(__file__).resolve().parents[1] / "fixtures" / "no-geoip.yaml"


def lines_of_scenario() -> list[str]:
    return (SCENARIO / "records.jsonl").read_text().splitlines()


def an_offending_call() -> dict:
    return json.loads(next(line for line in reversed(lines_of_scenario())
                           if '"AssumeRole"' not in line))


def detect(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXFILGUARD, "detect", *map(str, paths)], capture_output=True,
                          text=True, timeout=120, check=False)


def expected_findings() -> list[str]:
    golden = SCENARIO.parents[1] / "golden" / f"scenario-{SCENARIO.name}.jsonl"
    return golden.read_text().splitlines()


def finding_ids(stdout: str) -> list[str]:
    return [json.loads(line)["id"] for line in stdout.splitlines()]


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_an_unrenderable_event_time_costs_its_record_only(tmp_path, when):
    call = {**an_offending_call(), "eventTime": when, "eventID": "bad-time"}
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([*lines_of_scenario(), json.dumps(call)]) + "\n")
    result = detect(path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert finding_ids(result.stdout) == finding_ids("\n".join(expected_findings()))
    assert "1 bad" in result.stderr and "outside the years 1 to 9999" in result.stderr


def test_a_held_finding_out_of_range_still_renders():
    """The worker renders held findings at restart: state written before the check renders."""
    aggregate = {"id": "f", "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration."
                 "OutsideAWS", "severity": 8, "rule": "r", "account": "111122223333",
                 "region": "us-east-1", "access_key": "ASIA", "principal_id": "p", "role": "r",
                 "instance": "i-1", "remote_account": None, "affiliated": False,
                 "remote_ip": "198.51.100.1", "api": "ListBuckets", "service": "s3",
                 "user_agent": "", "first_ms": 253402300799000 + 14 * 3600_000,
                 "last_ms": 253402300799000 + 14 * 3600_000, "count": 1, "first_events": [],
                 "issuance": None, "delivery": None, "known_addresses": [], "detected_at": 0}
    assert render(aggregate, DetectionConfig())["createdAt"] == format_time(MAX_MS)


def with_nesting(call: dict, depth: int) -> bytes:
    """The call with ``requestParameters`` nested ``depth`` deep (json.dumps would recurse)."""
    nested = '{"x": ' * depth + '{"publicIp": "3.5.140.2"}' + "}" * depth
    return json.dumps({**call, "requestParameters": "HERE"}).replace('"HERE"', nested).encode()


def test_deep_nesting_in_an_address_change_is_walked_without_recursion():
    call = {**an_offending_call(), "eventName": "AllocateAddress",
            "eventSource": "ec2.amazonaws.com"}
    event = decode(with_nesting(call, 900))
    assert isinstance(event.network, NetworkChange)
    assert event.network.public_ips == ("3.5.140.2",)


def test_nesting_no_decoder_takes_is_a_bad_record():
    with pytest.raises(MalformedRecord):
        decode(with_nesting(an_offending_call(), 5000))


def test_a_corrupt_deflate_body_is_one_bad_file(tmp_path):
    (tmp_path / "bad.json.gz").write_bytes(b"\x1f\x8b\x08\x00\xff\xff\xff\xff\xff\xff\xff\xff")
    (tmp_path / "good.jsonl").write_text((SCENARIO / "records.jsonl").read_text())
    result = detect(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "corrupt gzip" in result.stderr
    assert len(result.stdout.splitlines()) == len(expected_findings())


def test_a_truncated_gzip_keeps_the_records_before_the_cut(tmp_path):
    body = gzip.compress((SCENARIO / "records.jsonl").read_bytes())
    (tmp_path / "cut.jsonl.gz").write_bytes(body[: len(body) - 40])
    result = detect(tmp_path / "cut.jsonl.gz")
    assert "Traceback" not in result.stderr
    assert "corrupt gzip" in result.stderr
    assert result.stdout.splitlines()  # the theft is in the records before the cut


# VmHWM, this process's own peak: ru_maxrss survives exec on Linux, so a child of a large
# pytest process would report the parent's size.
PEAK_RSS = """
import re, sys
from streams.cli.main import main
code = main(sys.argv[1:])
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print("peak_kb", hwm, file=sys.stderr)
sys.exit(code)
"""


def test_a_gzip_bomb_is_read_in_bounded_memory(tmp_path):
    """400 MB of one endless line in a 400 KB .gz: read as a stream, memory stays small."""
    bomb = tmp_path / "bomb.json.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as out:
        block = b"a" * (1 << 20)
        for _ in range(400):
            out.write(block)
        out.write(b"\n" + (SCENARIO / "records.jsonl").read_bytes())
    # geoip off: the bound is the reader's (an enrichment database's first load is not).
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, "detect", "--config",
                             str(NO_GEOIP), str(bomb)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    peak_mb = int(result.stderr.split("peak_kb")[-1]) / 1024
    assert peak_mb < 200, f"peak RSS {peak_mb:.0f} MB for a 400 MB line"
    assert "record of more than" in result.stderr
    assert len(result.stdout.splitlines()) == len(expected_findings())


def test_a_link_to_dev_zero_and_a_fifo_are_skipped_with_a_note(tmp_path):
    (tmp_path / "good.jsonl").write_text((SCENARIO / "records.jsonl").read_text())
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.json")
    result = detect(tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(expected_findings())
    assert "skipped" in result.stderr and "zero.json: a character device" in result.stderr
    assert "pipe.json: a FIFO" in result.stderr


def test_a_linked_directory_is_read_once_even_when_it_loops(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "records.jsonl").write_text((SCENARIO / "records.jsonl").read_text())
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    (scanned / "linked").symlink_to(real)
    (real / "back").symlink_to(scanned)  # a loop
    result = detect(scanned)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(expected_findings())
    assert f"{len(lines_of_scenario())} records" in result.stderr


def records_of_items(items) -> list:
    from streams.sources.files import Record

    return [(item.raw or json.dumps(item.data)) if isinstance(item, Record) else item.reason
            for item in items]


@pytest.mark.parametrize("shape", ["s3", "array", "lines"])
def test_a_document_read_in_small_chunks_gives_the_same_records(monkeypatch, shape):
    """Past MAX_DOCUMENT_BYTES a file is split as a stream: chunk edges change nothing."""
    from streams.sources import files

    path = sorted((SCENARIO.parents[1] / "fixtures" / "invictus" / "CloudTrail").glob("*.json"))[0]
    records = json.loads(path.read_text())["Records"]
    texts = [json.dumps(r) for r in records] + ['"a string, with [brackets] and \\"quotes\\""']
    body = {"s3": '{"Records": [' + ", ".join(texts) + "]}", "array": "[" + ",".join(texts) + "]",
            "lines": "\n".join(texts)}[shape].encode()
    whole = [json.loads(item.raw) if item.raw else item.data for item in
             files.split_document(body, "f") if isinstance(item, files.Record)]
    assert len(whole) == len(records)
    for chunk in (1, 7, 4096):
        monkeypatch.setattr(files, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(files, "MAX_DOCUMENT_BYTES", 10)
        streamed = list(files.split_document(body, "f"))
        got = [json.loads(item.raw) for item in streamed if isinstance(item, files.Record)]
        assert got == whole, chunk
        assert len(streamed) == len(records) + 1  # and the string, as one bad item


def test_an_oversized_record_in_a_streamed_document_is_dropped_unread(monkeypatch):
    from streams.sources import files

    monkeypatch.setattr(files, "CHUNK_BYTES", 64)
    monkeypatch.setattr(files, "MAX_DOCUMENT_BYTES", 10)
    monkeypatch.setattr(files, "MAX_RECORD_BYTES", 1000)
    big = '{"eventName": "x", "pad": "' + "\\\\" * 5000 + '", "deep": ' + "[" * 3000 + \
        "]" * 3000 + "}"
    body = ('{"Records": [{"a": 1}, ' + big + ', {"b": 2}]}').encode()
    items = list(files.split_document(body, "f"))
    assert [type(i).__name__ for i in items] == ["Record", "BadLine", "Record"]
    assert "record of more than 1000 bytes" in items[1].reason
    assert json.loads(items[2].raw) == {"b": 2}


def test_data_after_a_broken_document_is_reported_not_dropped_silently():
    from streams.sources.files import BadLine, split_document

    body = b'{"Records": [{"a": 1}, nope]}\n{"Records": [{"b": 2}]}\n'
    reasons = [i.reason for i in split_document(body, "f") if isinstance(i, BadLine)]
    assert reasons == ["not JSON", "data after the end of the document, not read"]
