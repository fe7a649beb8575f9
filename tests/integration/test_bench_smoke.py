"""``make bench`` at its smallest: every phase runs against its own broker and writes a results
file of the shape README and the issue read (no timing thresholds: the figures are the bench's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The smallest sizes at which every phase still measures something: the core's 20,000 records
# hold its first finding; e2e and scaling take whole generated files (10,000 records); a latency
# step of 1 s still injects 5 thefts; the one-per-message drain takes the first 2,000 records.
SMOKE = ["--quick", "--events", "20000", "--e2e-events", "10000", "--latency-seconds", "1",
         "--one-per-message-events", "2000",
         "--credentials", "1000", "--fed-credentials", "200", "--scaling-events", "10000",
         "--repeats", "1", "--repeat", "2", "--forwarder-events", "10000",
         "--offline-records", "10000,20000"]


def number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def test_a_quick_bench_run_writes_every_figure(tmp_path):
    output = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "bench.run", *SMOKE, "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick"
    core, forwarder, e2e, state, scaling, cost = (
        results[k] for k in ("core", "forwarder", "e2e", "state", "scaling", "cost"))
    assert core["events"] == 20000 and 0 < core["ratio"]
    assert number(core["decode_ceiling_events_per_s"]) and core["findings"] > 0
    assert forwarder["events"] == 10000 and number(forwarder["events_per_s"])
    assert 0 < forwarder["ratio"] and number(forwarder["decode_ceiling_events_per_s"])
    for figure in (forwarder["events_per_s_spread"], e2e["events_per_s_spread"]):
        assert figure["runs"] == 2 and figure["min"] <= figure["median"] <= figure["max"]
    assert number(e2e["events_per_s"]) and number(e2e["one_per_message_events_per_s"])
    assert e2e["one_per_message_events"] == 2000
    curve = e2e["latency_curve"]
    assert [step["fraction"] for step in curve] == [0.10, 0.25, 0.50, 0.65, 0.80, 0.95]
    offered = [step["offered_per_s"] for step in curve]
    assert offered == sorted(offered) and offered[0] > 0
    for step in curve:
        assert step["findings_seen"] > 0, step  # every step measured a finding's latency
        assert number(step["p50_ms"]) and step["p50_ms"] <= step["p99_ms"] <= step["max_ms"]
    half = curve[2]
    assert e2e["latency_ms"] == {"p50": half["p50_ms"], "p99": half["p99_ms"],
                                 "max": half["max_ms"]}
    svg = output.with_suffix(".svg").read_text()
    assert svg.startswith("<svg") and svg.count("<circle") == 2 * len(curve)
    spent = cost["cpu_s_per_million"]
    assert number(spent["forwarder"]) and number(spent["worker"])
    assert spent["total"] == round(spent["forwarder"] + spent["worker"], 2)
    assert number(cost["usd_per_million"]) and cost["guardduty_usd_per_million"] == 4.0
    assert number(state["recovery_s"]) and state["recovered_credential_detected"] is True
    assert number(scaling["workers_1_events_per_s"])
    assert list(results["offline"]["peak_rss_bytes"]) == ["10000", "20000"]
    assert all(number(peak) and peak > 0 for peak in results["offline"]["peak_rss_bytes"].values())
    assert "every target met" in run.stdout or "MISSED" in run.stdout  # the table's verdict
