"""The core over a finite set of records, for ``detect``, ``replay`` and ``backtest``: sorted by
``streams.core.order.order_key`` (the order the stream judges them in), fed to the ``Detector``
the stream uses, its pending buffer flushed at the end of input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.core.awsranges import AwsIpRanges
from streams.core.detector import MAX_DERIVATION_DEPTH, Detector
from streams.core.findings import IpEnricher
from streams.core.order import order_key
from streams.core.records import (
    ApiCall,
    Event,
    Issuance,
    MalformedRecord,
    decode_record,
    minted_key,
    normalise,
    signing_keys,
    unwrap,
)
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


def event_of(item: Item, derived: frozenset[str] = frozenset()) -> tuple[Event | None, Any]:
    """Decode one input item, with its record (None when skipped undecoded); MalformedRecord
    for a bad one, None for an irrelevant one."""
    if isinstance(item, BadLine):
        raise MalformedRecord(item.reason)
    if item.raw is not None:
        return decode_record(item.raw, derived)
    return normalise(unwrap(item.data), derived), item.data


class _Lineage:
    """Which keys were minted, by which keys: what a second look at the records needs (a
    derived key's calls carry no instance id, so the first look skipped them)."""

    def __init__(self) -> None:
        self.roots: set[str] = set()  # keys the instances were given
        self.children: dict[str, list[str]] = {}  # signer → keys its AssumeRoles minted
        self.held: dict[str, list[Item]] = {}  # signer → its records skipped the first time

    def note(self, item: Item, event: Event | None, record: Any) -> None:
        if isinstance(event, Issuance):
            self.roots.add(event.access_key_id)
            return
        if isinstance(event, ApiCall):
            self.roots.add(event.access_key_id)
            if event.derivation is not None:
                self.children.setdefault(event.access_key_id, []).append(
                    event.derivation.child_key)
            return
        if event is not None:
            return
        if record is not None:
            identity = unwrap(record).get("userIdentity") if isinstance(record, dict) else None
            signer = identity.get("accessKeyId") if isinstance(identity, dict) else None
            if not isinstance(signer, str):
                return
            child = minted_key(unwrap(record))
            if child is not None:
                self.children.setdefault(signer, []).append(child)
            keys = [signer]
        else:
            keys = [k.decode(errors="replace") for k in signing_keys(item.raw or b"")]
        for key in dict.fromkeys(keys):
            if key.startswith("ASIA"):  # derived keys are temporary ones
                self.held.setdefault(key, []).append(item)

    def derived(self) -> frozenset[str]:
        """Keys minted from an instance's key, up to ``MAX_DERIVATION_DEPTH`` hops."""
        found: set[str] = set()
        level = set(self.roots)
        for _ in range(MAX_DERIVATION_DEPTH):
            level = {child for key in level for child in self.children.get(key, ())} - found
            if not level:
                break
            found |= level
        return frozenset(found - self.roots)


def collect_events(items: Iterable[Item], stats: RunStats) -> list[Event]:
    events = []
    lineage = _Lineage()
    for item in items:
        stats.records += 1
        try:
            event, record = event_of(item)
        except MalformedRecord as exc:
            stats.note_bad(item.origin, str(exc))
            continue
        lineage.note(item, event, record)
        if event is not None:
            events.append(event)
    derived = lineage.derived()
    again: dict[int, Item] = {}  # once each, though it may name several derived keys
    for key in sorted(derived):
        again.update((id(item), item) for item in lineage.held.get(key, ()))
    for item in again.values():
        try:
            event, _ = event_of(item, derived)
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
