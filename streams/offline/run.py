"""The core over a finite set of records, for ``detect``, ``replay`` and ``backtest``: sorted by
``streams.core.order.order_key`` (the order the stream judges them in), fed to the ``Detector``
the stream uses, its pending buffer flushed at the end of input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.core.awsranges import AwsIpRanges
from streams.core.detector import Detector
from streams.core.findings import IpEnricher
from streams.core.order import order_key
from streams.core.records import Event, MalformedRecord, decode, normalise, unwrap
from streams.core.settings import DetectionConfig
from streams.core.timerange import TimeRange
from streams.sources.files import BadLine, Item


@dataclass
class RunStats:
    records: int = 0
    relevant: int = 0
    bad: int = 0
    bad_reasons: Counter = field(default_factory=Counter)
    first_bad: list[str] = field(default_factory=list)

    def note_bad(self, origin: str, reason: str) -> None:
        self.bad += 1
        self.bad_reasons[reason.split(":")[0]] += 1
        if len(self.first_bad) < 5:
            self.first_bad.append(f"{origin}: {reason}")


def event_of(item: Item) -> Event | None:
    """Decode one input item; MalformedRecord for a bad one, None for an irrelevant one."""
    if isinstance(item, BadLine):
        raise MalformedRecord(item.reason)
    if item.raw is not None:
        return decode(item.raw)
    return normalise(unwrap(item.data))


def collect_events(items: Iterable[Item], stats: RunStats) -> list[Event]:
    events = []
    for item in items:
        stats.records += 1
        try:
            event = event_of(item)
        except MalformedRecord as exc:
            stats.note_bad(item.origin, str(exc))
            continue
        if event is not None:
            events.append(event)
    stats.relevant = len(events)
    events.sort(key=order_key)
    return events


def load_events(items: Iterable[Item], window: TimeRange, stats: RunStats) -> list[Event]:
    """Decode and sort the records as ``detect`` does, keeping those in the range."""
    events = collect_events(items, stats)
    if window.bounded:
        events = [e for e in events if e.event_time in window]
        stats.relevant = len(events)
    return events


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
    a fresh detector over events in ``order_key`` order (``load_events`` sorts them), flushed at
    the end. Several configs can share one decoding of the input."""
    detector = Detector(config, aws, enrich=enrich)
    for event in events:
        detector.observe(event)
    detector.flush()
    return Run(detector.findings(), detector)


def detect(items: Iterable[Item], config: DetectionConfig, aws: AwsIpRanges,
           enrich: IpEnricher | None = None) -> tuple[list[dict[str, Any]], RunStats, Detector]:
    stats = RunStats()
    run = run_detection(collect_events(items, stats), config, aws, enrich)
    return run.findings, stats, run.detector
