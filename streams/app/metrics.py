"""Counters the worker exposes at /metrics in Prometheus' text format (no client library)."""

from __future__ import annotations

from collections import Counter

COUNTERS: Counter[str] = Counter()
HELP = {
    "exfilguard_records_total": "CloudTrail records consumed from the input topic",
    "exfilguard_records_relevant_total": "records that concern instance credentials or addresses",
    "exfilguard_records_dead_lettered_total": "records sent to the dead-letter topic",
    "exfilguard_calls_judged_total": "instance-credential calls judged",
    "exfilguard_findings_emitted_total": "finding messages produced (new and updates)",
}


def inc(name: str, by: int = 1) -> None:
    COUNTERS[name] += by


def render_prometheus(extra: dict[str, float] | None = None) -> str:
    lines = []
    for name in sorted(set(HELP) | set(COUNTERS)):
        lines.append(f"# HELP {name} {HELP.get(name, name)}")
        lines.append(f"# TYPE {name} counter")
        lines.append(f"{name} {COUNTERS.get(name, 0)}")
    for name, value in sorted((extra or {}).items()):
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"
