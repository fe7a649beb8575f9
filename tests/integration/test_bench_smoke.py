"""``make bench`` at its smallest: every phase runs against its own broker and writes a results
file of the shape README and the issue read (no timing thresholds: the figures are the bench's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The smallest sizes at which every phase still measures something.
SMOKE = ["--quick", "--events", "20000", "--e2e-events", "10000", "--latency-seconds", "3",
         "--credentials", "3000", "--fed-credentials", "2000", "--scaling-events", "10000",
         "--repeats", "1"]


def number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def test_a_quick_bench_run_writes_every_figure(tmp_path):
    output = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "bench.run", *SMOKE, "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick"
    core, e2e, state, scaling = (results[k] for k in ("core", "e2e", "state", "scaling"))
    assert core["events"] == 20000 and 0 < core["ratio"]
    assert number(core["decode_ceiling_events_per_s"]) and core["findings"] > 0
    assert number(e2e["events_per_s"]) and number(e2e["one_per_message_events_per_s"])
    assert number(e2e["latency_ms"]["p99"])
    assert number(state["recovery_s"]) and state["recovered_credential_detected"] is True
    assert number(scaling["workers_1_events_per_s"])
    assert "every target met" in run.stdout or "MISSED" in run.stdout  # the table's verdict
