"""The core over a finite set of records, for ``detect``, ``replay`` and ``backtest``: in
``streams.core.order.order_key`` order (the order the stream judges them in, restored within a
reorder window by ``streams.offline.events``), fed to the ``Detector`` the stream uses, its
pending buffer flushed at the end of input."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.core.awsranges import AwsIpRanges
from streams.core.detector import Detector
from streams.core.findings import IpEnricher
from streams.core.records import Event
from streams.core.settings import DEFAULT_LATE_ARRIVAL_GRACE_S, DetectionConfig
from streams.core.timerange import TimeRange
from streams.offline.events import RunStats, event_of, ordered_events
from streams.sources.files import Item, Source

__all__ = ["Run", "RunStats", "collect_events", "detect", "event_of", "load_events",
           "run_detection", "run_detections"]

Inputs = Sequence[Source] | Iterable[Item]


def collect_events(items: Inputs, stats: RunStats,
                   reorder_s: int = DEFAULT_LATE_ARRIVAL_GRACE_S) -> list[Event]:
    """Every event of the input, in order, as a list (for tests and small inputs)."""
    return list(ordered_events(items, stats, reorder_s=reorder_s))


def load_events(items: Inputs, window: TimeRange, stats: RunStats,
                reorder_s: int = DEFAULT_LATE_ARRIVAL_GRACE_S) -> list[Event]:
    """Decode and order the records as ``detect`` does, keeping those in the range."""
    return list(ordered_events(items, stats, window, reorder_s))


@dataclass
class Run:
    """One detection over a set of events: the findings, and the detector that holds them."""

    findings: list[dict[str, Any]]
    detector: Detector

    def aggregate(self, finding_id: str) -> dict[str, Any]:
        return self.detector.state.finding_aggregates[finding_id]


def run_detection(events: Iterable[Event], config: DetectionConfig, aws: AwsIpRanges,
                  enrich: IpEnricher | None = None) -> Run:
    """The one run of the core over a finite input, for ``detect``, ``replay`` and ``backtest``:
    a fresh detector over events in ``order_key`` order (``ordered_events`` gives them), flushed
    at the end."""
    return run_detections(events, [(config, aws, enrich)])[0]


def run_detections(events: Iterable[Event],
                   setups: Sequence[tuple[DetectionConfig, AwsIpRanges, IpEnricher | None]],
                   ) -> list[Run]:
    """As ``run_detection``, one detector per config over one pass of the events: several
    configs share one reading of the input."""
    detectors = [Detector(config, aws, enrich=enrich) for config, aws, enrich in setups]
    for event in events:
        for detector in detectors:
            detector.observe(event)
    runs = []
    for detector in detectors:
        detector.flush()
        runs.append(Run(detector.findings(), detector))
    return runs


def detect(items: Inputs, config: DetectionConfig, aws: AwsIpRanges,
           enrich: IpEnricher | None = None) -> tuple[list[dict[str, Any]], RunStats, Detector]:
    """Detection over files (``sources_of``) or a stream of items, in event-time order with
    the config's late-arrival grace as the reorder window."""
    stats = RunStats()
    events = ordered_events(items, stats, reorder_s=config.late_arrival_grace_seconds)
    run = run_detection(events, config, aws, enrich)
    return run.findings, stats, run.detector
