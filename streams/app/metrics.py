"""What the worker exposes at /metrics, in Prometheus' text format (no client library).

Counters end in ``_total`` and vary by labels, never by name; gauges are values a counter cannot
give (lags, ages, sizes). Every series has its HELP and TYPE lines.
"""

from __future__ import annotations

import math
from collections import Counter

Labels = tuple[tuple[str, str], ...]
COUNTERS: Counter[tuple[str, Labels]] = Counter()
HELP = {
    "exfilguard_records_total": "CloudTrail records consumed from the input topic, each once "
                                "(broadcast copies not counted again)",
    "exfilguard_records_relevant_total": "records that concern instance credentials or addresses",
    "exfilguard_records_dead_lettered_total": "records sent to the dead-letter topic, by reason "
                                              "class",
    "exfilguard_calls_judged_total": "instance-credential calls judged",
    "exfilguard_findings_emitted_total": "finding messages produced (new and updates), by type "
                                         "and severity",
    "exfilguard_issuances_total": "instance credentials issued (sts:AssumeRole by EC2) recorded",
    "exfilguard_calls_dropped_not_instance_total": "calls that waited for an issuance and were "
                                                   "not instance credentials",
    "exfilguard_network_changes_total": "address changes (elastic IPs, NAT gateways) applied",
    "exfilguard_vpc_endpoint_owner_unknown_total": "calls through a VPC endpoint CloudTrail names "
                                                   "no owner for, with none of the owner's "
                                                   "endpoints known (no finding possible)",
    "exfilguard_derived_records_rekeyed_total": "records of derived keys (key lineage) sent to "
                                                "their instance's partition",
    "exfilguard_derived_records_dropped_total": "records of a pending derived key not kept: "
                                                "max_pending_per_key already waiting",
}
# Counters shown at 0 before their first increment, so a dashboard has a series from the start.
UNLABELLED = ("exfilguard_records_total", "exfilguard_records_relevant_total",
              "exfilguard_calls_judged_total", "exfilguard_issuances_total",
              "exfilguard_calls_dropped_not_instance_total", "exfilguard_network_changes_total",
              "exfilguard_vpc_endpoint_owner_unknown_total")


def inc(name: str, by: int = 1, **labels: str) -> None:
    COUNTERS[(name, tuple(sorted(labels.items())))] += by


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, labels: Labels, value: float) -> str:
    text = "NaN" if math.isnan(value) else repr(float(value)) if isinstance(value, float) \
        else str(value)
    if not labels:
        return f"{name} {text}"
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return f"{name}{{{inner}}} {text}"


class Gauge:
    """One gauge family: its help and its (labels → value) series."""

    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.series: dict[Labels, float] = {}

    def set(self, value: float, **labels: str) -> Gauge:
        self.series[tuple(sorted(labels.items()))] = value
        return self


def render_prometheus(gauges: list[Gauge] = ()) -> str:
    lines = []
    by_name: dict[str, dict[Labels, int]] = {name: {} for name in HELP}
    for name in UNLABELLED:
        by_name[name][()] = 0
    for (name, labels), value in COUNTERS.items():
        by_name.setdefault(name, {})[labels] = value
    for name in sorted(by_name):
        lines.append(f"# HELP {name} {HELP.get(name, name)}")
        lines.append(f"# TYPE {name} counter")
        lines += [_series(name, labels, value) for labels, value in sorted(by_name[name].items())]
    for gauge in sorted(gauges, key=lambda g: g.name):
        lines.append(f"# HELP {gauge.name} {gauge.help}")
        lines.append(f"# TYPE {gauge.name} gauge")
        lines += [_series(gauge.name, labels, value)
                  for labels, value in sorted(gauge.series.items())]
    return "\n".join(lines) + "\n"
