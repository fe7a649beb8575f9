"""Backtest scores on labelled scenarios with known precision and recall, the labels file, the
two-config comparison, and replay over files (no broker needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.aws.ipranges import load_aws_ranges
from streams.config.loader import load_config
from streams.core.finding_types import INSIDE_AWS, OUTSIDE_AWS
from streams.core.timerange import BadRange, TimeRange, parse_range
from streams.errors import UserError
from streams.kafka.reader import CopyMerger, TopicStats
from streams.offline.backtest import compare, parse_labels, ratio, score
from streams.offline.run import RunStats, load_events, run_detection
from streams.sources.files import iter_items

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INVICTUS = FIXTURES / "invictus" / "CloudTrail"
LABELS = FIXTURES / "labels"
MIXED = LABELS / "mixed"
DEAD = {"EXFILGUARD_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
METRIC_KEYS = ["precision", "recall", "f1", "true_positives", "false_positives",
               "false_negatives"]

K1, K2, K3, K4, K5, K6 = ("ASIAKEY1STOLEN000001", "ASIAKEY2PENTEST00002", "ASIAKEY3INSIDE000003",
                          "ASIAKEY4QUIET0000004", "ASIAKEY5ABSENT000005", "ASIAKEY6LATE00000006")


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXFILGUARD, *args], capture_output=True, timeout=120, check=False,
                          env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr.decode()
    assert "Traceback" not in lines[0]
    return lines[0]


def backtest(labels_text: str, config: str | None = None, paths=(MIXED / "records.jsonl",),
             include_archived: bool = False):
    loaded = load_config(str(config) if config else None, environ={})
    events = load_events(iter_items([str(p) for p in paths]), TimeRange(), RunStats())
    run = run_detection(events, loaded.detection, load_aws_ranges(loaded.detection))
    labels = parse_labels(labels_text)
    return score(run, labels, events, include_archived), labels, events


def mixed_labels() -> str:
    return (MIXED / "labels.csv").read_text()


# -- labels --------------------------------------------------------------------------------------

def test_labels_accept_short_and_full_types_extra_columns_comments_and_a_bom():
    labels = parse_labels("\ufeffnote,type,accessKeyId\n"
                          "# a comment row\n"
                          f"stolen,OutsideAWS,{K1}\n"
                          f"inside,{INSIDE_AWS},{K3}\n"
                          f"again,outsideaws,{K1}\n"
                          "\n")
    assert labels.pairs == {(K1, OUTSIDE_AWS), (K3, INSIDE_AWS)}
    assert (labels.rows, labels.duplicates) == (3, 1)


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty; expected a header accessKeyId,type"),
    ("key,type\nASIA1,OutsideAWS\n", "labels:1: the header must name the columns"),
    ("accessKeyId,type\nASIA1,OutsideAWS\nASIA2,Exfiltration\n",
     "labels:3: type 'Exfiltration' is not one of OutsideAWS, InsideAWS"),
    ("accessKeyId,type\n,OutsideAWS\n", "labels:2: accessKeyId is empty"),
    ("accessKeyId,type\nASIA1\n", "labels:2: expected the columns accessKeyId,type"),
])
def test_bad_labels_name_the_line(text, message):
    with pytest.raises(UserError) as caught:
        parse_labels(text)
    assert message in str(caught.value)


# -- scores --------------------------------------------------------------------------------------

def test_the_mixed_scenario_scores_exactly_what_its_labels_say():
    result, _, _ = backtest(mixed_labels())
    assert result.metrics() == {"precision": 0.75, "recall": 0.6,
                                "f1": pytest.approx(2 / 3), "true_positives": 3,
                                "false_positives": 1, "false_negatives": 2}
    assert [(o.access_key, o.finding_type) for o in result.true_positives] == [
        (K3, INSIDE_AWS), (K1, OUTSIDE_AWS), (K6, OUTSIDE_AWS)]  # by first evidence
    (fp,) = result.false_positives
    assert (fp.access_key, fp.evidence.event_id) == (K2, "k2-pentest")
    assert fp.evidence.detail == "ListBuckets from 198.51.100.7"
    fn4, fn5 = result.false_negatives
    # A missed key's first evidence is its first call in the input, or none.
    assert (fn4.access_key, fn4.evidence.event_id, fn4.account) == (K4, "k4-own",
                                                                    "444455556666")
    assert (fn5.access_key, fn5.evidence) == (K5, None)


def test_time_to_detect_is_event_time_from_first_offence_to_detection():
    result, _, _ = backtest(mixed_labels())
    seconds = {d.access_key: d.seconds for d in result.detections}
    # K6 has no issuance in the input: it waits out the late-arrival grace and is judged at
    # the next event, ten minutes of event time later.
    assert seconds == {K1: 0, K2: 0, K3: 0, K6: 600}
    assert result.time_to_detect() == {"median": 0.0, "max": 600.0}


def test_first_evidence_of_a_false_positive_is_its_earliest_offending_event():
    result, _, _ = backtest(f"accessKeyId,type\n{K2},OutsideAWS\n")
    k1 = next(o for o in result.false_positives if o.access_key == K1)
    assert (k1.evidence.event_id, k1.evidence.detail) == ("k1-theft", "GetObject from 45.33.32.156")


def test_the_right_key_with_the_wrong_type_is_a_false_positive_and_a_false_negative():
    result, _, _ = backtest(f"accessKeyId,type\n{K1},InsideAWS\n")
    assert (K1, OUTSIDE_AWS) in {(o.access_key, o.finding_type) for o in result.false_positives}
    (fn,) = result.false_negatives
    assert (fn.access_key, fn.finding_type, fn.evidence.event_id) == (K1, INSIDE_AWS, "k1-own")
    assert result.metrics()["true_positives"] == 0
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)


def test_nothing_right():
    result, _, _ = backtest(f"accessKeyId,type\n{K1},OutsideAWS\n{K5},OutsideAWS\n",
                            config=MIXED / "overtuned.yaml")
    # overtuned trusts the thief: only K3 (unlabelled here) is raised; K1 and K5 are missed.
    assert result.metrics() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "true_positives": 0,
                                "false_positives": 1, "false_negatives": 2}


def test_precision_two_thirds_recall_one_half():
    result, _, _ = backtest(f"accessKeyId,type\n{K1},OutsideAWS\n{K3},InsideAWS\n"
                            f"{K4},OutsideAWS\n{K5},OutsideAWS\n", config=MIXED / "tuned.yaml")
    # raised: K1, K3, K6 (tuned); labelled K1, K3, K4, K5 → TP 2, FP 1, FN 2
    assert result.metrics()["true_positives"] == 2
    assert (result.precision, result.recall) == (2 / 3, 0.5)


def test_one_half_exactly(tmp_path):
    config = tmp_path / "c.yaml"
    # Trust the thief's network for K6's and K1's calls too: only K2 and K3 are raised.
    config.write_text('trusted_ip_cidrs: ["45.33.32.0/24"]\n')
    result, _, _ = backtest(f"accessKeyId,type\n{K3},InsideAWS\n{K1},OutsideAWS\n",
                            config=config)
    assert result.metrics() == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "true_positives": 1,
                                "false_positives": 1, "false_negatives": 1}


def test_a_perfect_score_on_the_invictus_theft():
    result, _, _ = backtest((LABELS / "invictus.csv").read_text(), paths=[INVICTUS])
    assert result.metrics() == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "true_positives": 1,
                                "false_positives": 0, "false_negatives": 0}


def test_archived_findings_are_not_raised_unless_asked():
    result, _, _ = backtest(mixed_labels(), config=MIXED / "suppressed.yaml")
    assert [f["resource"]["accessKeyDetails"]["accessKeyId"] for f in result.archived] == [K2]
    assert result.metrics()["false_positives"] == 0
    assert {d.access_key: d.status for d in result.detections}[K2] == "archived"
    result, _, _ = backtest(mixed_labels(), config=MIXED / "suppressed.yaml",
                            include_archived=True)
    assert result.metrics()["false_positives"] == 1


def test_nothing_to_divide_by_is_one():
    # No labels and no findings: nothing was missed and nothing raised wrongly.
    empty, _, _ = backtest("accessKeyId,type\n", paths=[])
    assert empty.metrics() == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "true_positives": 0,
                               "false_positives": 0, "false_negatives": 0}
    assert empty.time_to_detect() == {"median": None, "max": None}
    # Labels and no findings: precision 1 (no false alarm), recall 0.
    missed, _, _ = backtest(f"accessKeyId,type\n{K1},OutsideAWS\n", paths=[])
    assert (missed.precision, missed.recall, missed.f1) == (1.0, 0.0, 0.0)
    # Findings and no labels: recall 1 (nothing to miss), precision 0.
    noisy, _, _ = backtest("accessKeyId,type\n")
    assert (noisy.precision, noisy.recall, noisy.f1) == (0.0, 1.0, 0.0)
    assert ratio(0, 0) == 1.0


# -- two configs ---------------------------------------------------------------------------------

def test_tuning_shows_the_false_positive_it_removes():
    base, labels, events = backtest(mixed_labels())
    tuned, _, _ = backtest(mixed_labels(), config=MIXED / "tuned.yaml")
    comparison = compare(base, tuned, labels)
    assert comparison.added == []
    assert [(e["accessKeyId"], e["remote"], e["labelled"]) for e in comparison.removed] == [
        (K2, "198.51.100.7", False)]
    assert comparison.as_dict()["baseline"]["precision"] == 0.75


def test_an_overwide_allow_list_shows_the_hits_it_loses_and_the_reverse_adds_them():
    tuned, labels, _ = backtest(mixed_labels(), config=MIXED / "tuned.yaml")
    wide, _, _ = backtest(mixed_labels(), config=MIXED / "overtuned.yaml")
    lost = compare(tuned, wide, labels)
    assert [(e["accessKeyId"], e["labelled"]) for e in lost.removed] == [(K1, True), (K6, True)]
    gained = compare(wide, tuned, labels)
    assert [e["accessKeyId"] for e in gained.added] == [K1, K6] and gained.removed == []


def test_a_suppression_rule_shows_as_removed_and_archived():
    base, labels, _ = backtest(mixed_labels())
    suppressed, _, _ = backtest(mixed_labels(), config=MIXED / "suppressed.yaml")
    (entry,) = compare(base, suppressed, labels).removed
    assert (entry["accessKeyId"], entry["archivedInOther"]) == (K2, "red-team")


# -- the command ----------------------------------------------------------------------------------

def test_json_prints_exactly_the_metrics():
    result = run_cli("backtest", "--labels", str(MIXED / "labels.csv"), "--json",
                     str(MIXED / "records.jsonl"))
    assert result.returncode == 0, result.stderr.decode()
    metrics = json.loads(result.stdout)
    assert list(metrics) == METRIC_KEYS
    assert metrics["precision"] == 0.75 and metrics["recall"] == 0.6
    assert metrics["f1"] == pytest.approx(2 / 3)


def test_json_with_a_baseline_adds_the_comparison():
    result = run_cli("backtest", "--labels", str(MIXED / "labels.csv"), "--json",
                     "--config", str(MIXED / "tuned.yaml"),
                     "--baseline-config", str(MIXED / "overtuned.yaml"),
                     str(MIXED / "records.jsonl"))
    assert result.returncode == 0, result.stderr.decode()
    payload = json.loads(result.stdout)
    assert list(payload) == METRIC_KEYS + ["comparison"]
    assert payload["precision"] == 1.0 and payload["comparison"]["baseline"]["recall"] == 0.2
    assert [e["accessKeyId"] for e in payload["comparison"]["added"]] == [K1, K6]


def test_text_names_each_false_positive_and_negative_with_its_evidence(tmp_path):
    result = run_cli("backtest", "--labels", str(MIXED / "labels.csv"),
                     "--baseline-config", str(MIXED / "tuned.yaml"),
                     "--report", str(tmp_path / "report"), str(MIXED / "records.jsonl"))
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "precision 0.750  recall 0.600  F1 0.667" in text
    assert "true positives 3  false positives 1  false negatives 2" in text
    assert (f"OutsideAWS {K2}: first evidence 2024-03-01T10:10:00.000Z event k2-pentest "
            "(ListBuckets from 198.51.100.7)") in text
    assert (f"OutsideAWS {K4}: first call 2024-03-01T10:40:00.000Z event k4-own "
            "(ListBuckets from 3.225.16.109)") in text
    assert f"InsideAWS {K5}: no call with this key in the input" in text
    assert "median 0 s, max 600 s" in text
    assert f"TP       OutsideAWS {K6} 2024-03-01T10:30:00.000Z -> 2024-03-01T10:40:00.000Z " \
           "600 s" in text
    assert f"+ OutsideAWS {K2} from 198.51.100.7: not labelled (a new false positive)" in text
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<svg" in page and "<table" in page and "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_report_escapes_what_the_records_say(tmp_path):
    records = [json.loads(line) for line in (MIXED / "records.jsonl").read_text().splitlines()]
    for record in records:
        record["eventID"] = record["eventID"] + "<script>alert(1)</script>"
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run_cli("backtest", "--labels", str(MIXED / "labels.csv"), "--report",
                     str(tmp_path / "r"), str(path))
    assert result.returncode == 0, result.stderr.decode()
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<script" not in page and "&lt;script&gt;" in page


def test_the_same_backtest_writes_the_same_report(tmp_path):
    for name in ("a", "b"):
        result = run_cli("backtest", "--labels", str(MIXED / "labels.csv"), "--report",
                         str(tmp_path / name), str(MIXED / "records.jsonl"))
        assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "a" / "report.html").read_bytes() == \
        (tmp_path / "b" / "report.html").read_bytes()


@pytest.mark.parametrize(("args", "message"), [
    (["--labels", "/nonexistent/labels.csv", str(MIXED / "records.jsonl")],
     "--labels /nonexistent/labels.csv: cannot read it"),
    (["--labels", str(MIXED / "labels.csv")], "give the PATHs to backtest, or --topic"),
    (["--labels", str(MIXED / "labels.csv"), "--topic", "t", "--start", "2024-03-01"],
     "reading topic t needs --start and --end"),
    (["--labels", str(MIXED / "labels.csv"), "--baseline-config", "/nonexistent.yaml",
      str(MIXED / "records.jsonl")], "config /nonexistent.yaml: cannot read it"),
])
def test_backtest_errors_are_one_line(args, message):
    result = run_cli("backtest", *args)
    assert result.returncode == 2
    assert message in one_line_error(result)


# -- replay over files, time ranges ---------------------------------------------------------------

def test_replay_of_files_is_detect_byte_for_byte_every_time(tmp_path):
    detect = run_cli("detect", str(INVICTUS))
    assert detect.returncode == 0
    outputs = []
    for name in ("a.jsonl", "b.jsonl"):
        result = run_cli("replay", "--output", str(tmp_path / name), str(INVICTUS))
        assert result.returncode == 0, result.stderr.decode()
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1] == detect.stdout
    assert detect.stdout.count(b"\n") == 1


def test_replay_of_files_keeps_the_range():
    before_theft = run_cli("replay", "--output", "-", "--start", "2023-07-10T00:00:00Z",
                           "--end", "2023-07-10T11:57:00Z", str(INVICTUS))
    assert before_theft.returncode == 0, before_theft.stderr.decode()
    assert before_theft.stdout == b""
    around = run_cli("replay", "--output", "-", "--start", "2023-07-10T11:50:00Z", "--end",
                     "2023-07-10T12:00:00Z", str(INVICTUS))
    assert around.stdout.count(b"\n") == 1


@pytest.mark.parametrize(("args", "message", "code"), [
    (["--start", "yesterday", "--end", "2023-07-11T00:00:00Z"],
     "--start 'yesterday' is not an ISO 8601 time such as 2023-07-10T11:00:00Z", 2),
    (["--start", "2023-07-11T00:00:00Z", "--end", "2023-07-10T00:00:00Z"],
     "--start 2023-07-11T00:00:00Z is not before --end 2023-07-10T00:00:00Z", 2),
    (["--start", "2023-07-10T00:00:00Z", "--end", "2023-07-10T00:00:00Z"],
     "is not before --end", 2),
    (["--start", "2023-07-10T00:00:00Z"], "needs --start and --end", 2),
    (["--start", "2023-07-10T00:00:00Z", "--end", "2023-07-11T00:00:00Z"],
     "cannot reach Kafka at 127.0.0.1:1", 3),
])
def test_replay_errors_are_one_line(args, message, code):
    result = run_cli("replay", "--topic", "cloudtrail", "--output", "-", *args, env=DEAD)
    assert result.returncode == code
    assert message in one_line_error(result)


def test_replay_output_topic_refuses_the_live_topics():
    result = run_cli("replay", "--topic", "cloudtrail", "--output-topic", "findings", "--start",
                     "2023-07-10T00:00:00Z", "--end", "2023-07-11T00:00:00Z", env=DEAD)
    assert result.returncode == 2
    assert "one of the live worker's topics" in one_line_error(result)


def test_ranges():
    window = parse_range("2023-07-10T00:00:00Z", "2023-07-10T00:00:01Z")
    assert window.start_ms in window and window.end_ms not in window
    assert parse_range("2023-07-10T00:00:00", None).start_ms == window.start_ms  # no zone: UTC
    with pytest.raises(BadRange, match="is not before"):  # the same instant
        parse_range("2023-07-10T00:00:00Z", "2023-07-10T01:00:00+01:00")
    assert parse_range(None, None).bounded is False


# -- merging the forwarder's partition copies ----------------------------------------------------

def fold(messages):
    stats = TopicStats(topic="t")
    folder = CopyMerger(TimeRange(1000, 2000), stats)
    for message in messages:
        folder.add(*message)
    return [item.raw for item in folder.items()], stats


def test_copies_on_every_partition_are_one_record_and_a_double_forward_stays_double():
    eip = b'{"eventName": "AllocateAddress", "n": 1}'
    stop = b'{"eventName": "StopInstances", "n": 2}'
    twice = b'{"eventName": "x", "userIdentity": {"arn": "arn:aws:sts::1:assumed-role/r/i-3"}}'
    messages = [
        (0, 5, b"111122223333", 1500, eip), (1, 9, b"111122223333", 1500, eip),
        (2, 1, b"111122223333", 1500, eip),  # broadcast to three partitions: one record
        (0, 6, b"i-1", 1600, stop), (0, 7, b"i-2", 1600, stop),  # one per instance: one record
        (1, 3, b"i-3", 1100, twice), (1, 4, b"i-3", 1100, twice),  # forwarded twice: two
        (2, 8, b"k", 2000, b'{"eventName": "AllocateAddress"}'),  # at the end: outside
        (2, 9, b"k", 1200, b'{"eventName": "ConsoleLogin"}'),  # cannot matter: skipped
    ]
    values, stats = fold(messages)
    assert values == [twice, twice, eip, stop]
    assert (stats.copies, stats.outside, stats.skipped) == (3, 1, 1)
    # Another partition numbering and any order of the same messages give the same records.
    assert fold(reversed(messages))[0] == values
    assert fold([((p + 1) % 3, o + 100, k, t, v) for p, o, k, t, v in messages])[0] == values
