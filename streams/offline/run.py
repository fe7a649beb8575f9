"""Detection over a finite set of records: ``detect``, file replay and backtest.

Records are sorted by ``streams.core.order.order_key`` (the order the stream judges them in) and
fed to the
same ``Detector`` the stream uses; the pending buffer is flushed at the end of input.
"""

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


def run_events(events: Iterable[Event], config: DetectionConfig, aws: AwsIpRanges,
               enrich: IpEnricher | None = None) -> Detector:
    """A fresh detector over events already in ``order_key`` order, flushed at the end."""
    detector = Detector(config, aws, enrich=enrich)
    for event in events:
        detector.observe(event)
    detector.flush()
    return detector


def detect(items: Iterable[Item], config: DetectionConfig, aws: AwsIpRanges,
           enrich: IpEnricher | None = None) -> tuple[list[dict[str, Any]], RunStats, Detector]:
    stats = RunStats()
    detector = run_events(collect_events(items, stats), config, aws, enrich)
    return detector.findings(), stats, detector
