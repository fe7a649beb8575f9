"""What a worker says about itself, on the real broker: /metrics read with Prometheus' own
text-format parser, and /readyz and the log while the broker is stopped and started again."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Deployment
from kafka_broker import free_port, start_broker, stop_broker
from test_pipeline import INVICTUS, invictus_records, write_config, write_jsonl

parser = pytest.importorskip("prometheus_client.parser")

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
HOSTILE = ('{"eventName": "GetCallerIdentity", "userIdentity": {"type": "AssumedRole", "arn": '
           '"arn:aws:sts::123837392027:assumed-role/r/i-0dbc91f429e48eeed", "accessKeyId": '
           '"ASIAX"}, "eventTime": "2023-07-10T12:00:00Z", "sourceIPAddress": "<script>"}')


def scrape(worker) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics",
                                timeout=5) as response:
        text = response.read().decode()
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def sample_values(family, name: str | None = None) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples
            if name is None or s.name == name}


def ready(worker) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/readyz",
                                    timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_follow_prometheus_conventions_and_count_each_record_once(deployment, tmp_path):
    d = deployment(partitions=3)
    worker = d.start_worker(config=str(write_config(tmp_path)))
    eip = (SCENARIOS / "elastic-ip-association" / "records.jsonl").read_text().splitlines()
    # Address changes go to every partition: counted once all the same.
    assert any('"AllocateAddress"' in line or '"AssociateAddress"' in line for line in eip)
    path = write_jsonl(tmp_path / "input.jsonl",
                       [json.dumps(r) for r in invictus_records()] + eip + [HOSTILE])
    sent = len(invictus_records()) + len(eip) + 1
    forwarded = d.exfilguard("forward", str(path))
    assert forwarded.returncode == 0, forwarded.stderr.decode()

    seen: list = []

    def settled():
        families = scrape(worker)
        records = sample_values(families["exfilguard_records"], "exfilguard_records_total")
        lag = sample_values(families["exfilguard_consumer_lag"])
        seen[:] = [records, lag]
        return families if records == {(): sent} and lag and not any(lag.values()) else None

    try:
        families = wait_for(settled, 120, f"{sent} records counted and no lag")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen records, lag: {seen}") from None
    for family in families.values():
        assert family.documentation and family.documentation != family.name, family.name
        assert family.type in ("counter", "gauge"), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
    counters = {n for n, f in families.items() if f.type == "counter"}
    gauges = {n for n, f in families.items() if f.type == "gauge"}
    assert not counters & gauges, "a gauge duplicates a counter"
    assert not [g for g in gauges if "detector" in g]
    emitted = sample_values(families["exfilguard_findings_emitted"])
    assert emitted.get((("severity", "8"), ("type", "OutsideAWS")), 0) >= 1, emitted
    dead = sample_values(families["exfilguard_records_dead_lettered"])
    assert dead == {(("reason", "malformed"),): 1.0}, dead
    lag = sample_values(families["exfilguard_consumer_lag"])
    topic = d.env["EXFILGUARD_TOPIC_INPUT"]
    assert sorted(lag) == [(("partition", str(p)), ("topic", topic)) for p in range(3)]
    newest = max(datetime.fromisoformat(json.loads(line)["eventTime"].replace("Z", "+00:00"))
                 for line in eip)
    [event_lag] = sample_values(families["exfilguard_event_time_lag_seconds"]).values()
    assert abs(event_lag - (time.time() - newest.timestamp())) < 600
    snapshot = json.loads(
        (Path(__file__).resolve().parents[2] / "streams" / "data" / "ip-ranges.json").read_text())
    created = datetime.strptime(snapshot["createDate"], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
    [age] = sample_values(families["exfilguard_ip_ranges_age_seconds"]).values()
    assert abs(age - (time.time() - created.timestamp())) < 600
    assert d.stop_worker(worker) == 0


def test_readyz_turns_false_while_the_broker_is_down_and_the_log_stays_readable(tmp_path):
    folder = tmp_path / "kafka"
    folder.mkdir()
    port = free_port()
    bootstrap = start_broker(folder, port)
    d = Deployment(bootstrap, tmp_path, partitions=1, EXFILGUARD_BROKER_UNREADY_SECONDS="5",
                   EXFILGUARD_BROKER_PROBE_SECONDS="1", EXFILGUARD_LOG_REPEAT_SECONDS="5")
    try:
        worker = d.start_worker(config=str(write_config(tmp_path)))
        assert ready(worker) == (200, {"ready": True, "tables_recovered": True,
                                       "broker_reachable": True})
        forwarded = d.exfilguard("forward", str(INVICTUS))
        assert forwarded.returncode == 0, forwarded.stderr.decode()
        stop_broker(folder, port)
        status, body = wait_for(lambda: (r := ready(worker))[0] == 503 and r, 60,
                                "/readyz to report not ready")
        assert body["broker_reachable"] is False
        # /readyz turns at the timeout; the line saying so comes with the next probe, up to a
        # probe interval later (CI once caught it inside the stretch below).
        wait_for(lambda: "unreachable for" in worker.log_path.read_text(), 30,
                 "the worker to log that Kafka is unreachable")
        before = worker.log_path.read_text().count("\n")
        time.sleep(12)  # a stretch of outage: what the log says about it
        outage = worker.log_path.read_text().splitlines()[before:]
        start_broker(folder, port)
        wait_for(lambda: ready(worker)[0] == 200, 120, "/readyz to report ready again")
        log = worker.log_path.read_text()
        assert log.count("unreachable for") == 1, log[-4000:]
        assert log.count("reachable again") == 1, log[-4000:]
        assert "still unreachable" in log and "suppressed" in log
        # Was ~700 lines in 10 s: now one line of ours every 5 s, and nothing else.
        assert 1 <= len(outage) <= 4, "\n".join(outage[-80:])
        assert all("still unreachable" in line for line in outage), "\n".join(outage)
        assert worker.poll() is None
    finally:
        d.close()
        stop_broker(folder, port)


def test_only_the_health_and_metrics_pages_are_served(deployment, tmp_path):
    """Faust's /table and /router would show watched keys and findings to anyone on the port."""
    worker = deployment(partitions=1).start_worker(config=str(write_config(tmp_path)))
    for path in ("/livez", "/readyz", "/metrics"):
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}{path}",
                                    timeout=5) as response:
            assert response.status == 200, path
    for path in ("/", "/table/", "/table/finding_aggregates/", "/router/", "/graph/",
                 "/performance/", "/stats/"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}{path}", timeout=5)
        assert caught.value.code == 404, path
