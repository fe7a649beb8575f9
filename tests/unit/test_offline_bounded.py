"""Offline runs in bounded memory and in event-time order: ``detect``'s peak memory does not grow
with the number of records (a ratio between a run and one four times as long), and records out
of order within the reorder window give the findings sorted input gives."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from cloudtrail_builders import at, call, issuance  # noqa: E402

from streams.aws.ipranges import load_aws_ranges  # noqa: E402
from streams.core.settings import parse_config  # noqa: E402
from streams.offline import events as events_module  # noqa: E402
from streams.offline.events import RunStats  # noqa: E402
from streams.offline.run import collect_events, detect  # noqa: E402
from streams.sources.files import iter_items, sources_of  # noqa: E402

INSTANCES = 8
# Each instance's own public address, in EC2's us-east-1 ranges: its calls are benign.
OWN_IPS = [f"3.80.0.{10 + i}" for i in range(INSTANCES)]
THIEF_IP = "45.33.32.156"  # outside AWS

# VmHWM, the child's own peak (ru_maxrss would carry pytest's over exec).
PEAK_RSS = """
import re, sys
from streams.cli.main import main
code = main(sys.argv[1:])
print("peak_kb", re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1),
      file=sys.stderr)
sys.exit(code)
"""


def instance_traffic(calls: int, thefts_every: int = 0) -> list[dict]:
    """Every record about instance credentials (each one relevant): a call a second, round the
    instances, each instance's key renewed every hour; a theft now and then."""
    records, keys = [], {}
    for second in range(calls):
        instance = second % INSTANCES
        instance_id = f"i-0{instance:016x}"
        if second % 3600 < INSTANCES:  # the hour's new key, just before its first call
            keys[instance] = f"ASIA{second // 3600:08d}{instance:08d}"
            records.append(issuance(event_id=f"issue-{second}", time=at(seconds=second - 1),
                                    instance_id=instance_id, access_key=keys[instance]))
        thief = thefts_every and second % thefts_every == thefts_every - 1
        records.append(call(event_id=f"call-{second}", time=at(seconds=second),
                            access_key=keys[instance], instance_id=instance_id,
                            source_ip=THIEF_IP if thief else OWN_IPS[instance],
                            api="s3:ListBuckets" if thief else "ec2:DescribeInstances"))
    return records


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def peak_rss(path: Path, tmp_path: Path) -> int:
    config = tmp_path / "config.yaml"
    config.write_text("geoip: false\n")
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, "detect", "--config", str(config),
                             str(path)], cwd=ROOT, capture_output=True, check=False, timeout=600)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    return int(re.search(r"peak_kb (\d+)", stderr).group(1)) * 1024


def test_detect_memory_does_not_grow_with_the_records(tmp_path):
    """Four times the records, every one relevant: today's reading holds each event till the
    end (its peak grows about 2x here); the reorder window keeps it flat."""
    n = 15_000
    small = peak_rss(write(tmp_path / "small.jsonl", instance_traffic(n)), tmp_path)
    large = peak_rss(write(tmp_path / "large.jsonl", instance_traffic(4 * n)), tmp_path)
    assert large / small < 1.25, (small, large)


def findings_of(inputs, config=None):
    config = config or parse_config({})
    findings, stats, _ = detect(inputs, config, load_aws_ranges(config))
    return findings, stats


def shuffled_within(records: list[dict], seconds: int, seed: int = 7) -> list[dict]:
    """The records in an order that strays up to ``seconds`` of event time from theirs."""
    rng = random.Random(seed)
    keyed = [(i + rng.uniform(0, seconds), r) for i, r in enumerate(records)]
    return [r for _, r in sorted(keyed, key=lambda pair: pair[0])]


def test_out_of_order_within_the_window_gives_the_sorted_findings(tmp_path):
    records = instance_traffic(4000, thefts_every=500)
    ordered = write(tmp_path / "sorted.jsonl", records)
    # About a record a second, so a stray of 240 records is 4 minutes: inside the default
    # window of 300 s.
    stray = write(tmp_path / "stray.jsonl", shuffled_within(records, 240))
    want, _ = findings_of(iter_items([str(ordered)]))
    got, stats = findings_of(iter_items([str(stray)]))
    assert want and got == want
    assert stats.late == 0
    # The same records split into two files merged by time, one of them out of order.
    half = len(records) // 2
    first = write(tmp_path / "b-first.jsonl", shuffled_within(records[:half], 240, seed=8))
    second = write(tmp_path / "a-second.jsonl", records[half:])
    got, stats = findings_of(sources_of([str(second), str(first)]))
    assert got == want and stats.late == 0


def test_a_record_later_than_the_window_is_judged_as_it_comes(tmp_path, monkeypatch):
    """An issuance read an hour of event time after the key's calls, in a later sorted run of
    its file (runs of 1,000 here): the stream would judge the calls without it (their grace
    long over), and so does detect, counting it late."""
    monkeypatch.setattr(events_module, "SORTED_RUN_EVENTS", 1000)
    records = instance_traffic(4000, thefts_every=500)
    first_issuance = records.pop(0)
    late = write(tmp_path / "late.jsonl", records[:3600] + [first_issuance] + records[3600:])
    events = collect_events(iter_items([str(late)]), stats := RunStats())
    assert stats.late == 1
    assert sum(1 for e in events if type(e).__name__ == "Issuance") == sum(
        1 for r in records if r["eventName"] == "AssumeRole") + 1


def test_gzip_files_and_one_large_document_give_the_golden_findings(tmp_path):
    """The public capture gzipped, and its records in one document over the size decoded
    whole (so split record by record, with the hostile-input splitter): the golden bytes."""
    import gzip

    capture = ROOT / "tests" / "fixtures" / "invictus" / "CloudTrail"
    golden = (ROOT / "tests" / "golden" / "invictus-detect.jsonl").read_bytes()
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    records = []
    for path in sorted(capture.glob("*.json")):
        (zipped / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
        records += json.loads(path.read_text())["Records"]
    large = tmp_path / "large.json"
    large.write_text(json.dumps({"Records": records}, indent=2))
    assert large.stat().st_size > (1 << 20)
    config = tmp_path / "config.yaml"
    config.write_text("geoip: false\n")
    exfilguard = str(Path(sys.executable).with_name("exfilguard"))
    for source in (zipped, large):
        run = subprocess.run([exfilguard, "detect", "--config", str(config), str(source)],
                             cwd=ROOT, capture_output=True, check=False)
        assert run.returncode == 0, run.stderr.decode()
        assert run.stdout == golden, source


def test_a_files_turn_comes_at_its_first_event_time(tmp_path):
    """A file is opened when the merge reaches its first record's eventTime, read from its
    first bytes (gzip too); one whose start names none is opened first."""
    import gzip

    from streams.core.times import parse_time
    from streams.offline.events import first_time

    records = instance_traffic(20)
    plain = write(tmp_path / "plain.jsonl", records)
    zipped = tmp_path / "zipped.json.gz"
    zipped.write_bytes(gzip.compress(json.dumps({"Records": records[3:]}).encode()))
    unnamed = tmp_path / "unnamed.jsonl"
    unnamed.write_text('{"@timestamp": "2024-03-01T10:00:00Z"}\n')
    plain_source, zipped_source, unnamed_source = sources_of(
        [str(plain), str(zipped), str(unnamed)])
    assert first_time(plain_source) == parse_time(records[0]["eventTime"])
    assert first_time(zipped_source) == parse_time(records[3]["eventTime"])
    assert first_time(unnamed_source) is None


def test_a_file_out_of_order_beyond_the_window_is_judged_as_sorted(tmp_path):
    # Scenarios concatenated, extracts appended out of order: `forward` sorts a file before
    # the stream sees it, and detect sorts it alike (in runs of SORTED_RUN_EVENTS), so both
    # judge it as the sorted records, nothing late.
    records = instance_traffic(3000, thefts_every=300)
    half = len(records) // 2
    want, _ = findings_of(iter_items([str(write(tmp_path / "sorted.jsonl", records))]))
    got, stats = findings_of(iter_items([str(write(tmp_path / "later-half-first.jsonl",
                                                   records[half:] + records[:half]))]))
    assert want and got == want
    assert stats.late == 0
