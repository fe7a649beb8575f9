"""The events of offline inputs in the order the stream judges them, in bounded memory: each file
read incrementally, the files merged by event time, and a reorder window of event time (the
stream's ``late_arrival_grace_seconds``) putting right each file's own disorder. Nothing is held
for the whole input: memory follows the window, not the number of records."""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.core.detector import MAX_DERIVATION_DEPTH
from streams.core.order import ReorderBuffer, order_key, recheck_key
from streams.core.records import (
    ApiCall,
    Event,
    Issuance,
    MalformedRecord,
    decode_json,
    decode_record,
    event_time_of,
    minted_key,
    normalise,
    signing_keys,
    unwrap,
)
from streams.core.settings import DEFAULT_LATE_ARRIVAL_GRACE_S
from streams.core.timerange import TimeRange
from streams.core.times import MS_PER_S, parse_time
from streams.sources.files import PEEK_CHUNK_BYTES, BadLine, Item, Record, Source

# A minted key works at most 12 hours (AssumeRole's longest session): what the lineage knows of
# a key goes this long after the key was last named (beyond the detector's own grace for it).
LINEAGE_KEPT_MS = 12 * 3600 * MS_PER_S
_SWEEP_EVERY_MS = 3600 * MS_PER_S
_PEEK_ITEMS = 16  # records tried for a file's first event time
_UNKNOWN_START = -(1 << 62)  # a file whose first time cannot be read is opened first


@dataclass
class RunStats:
    records: int = 0
    relevant: int = 0
    bad: int = 0
    late: int = 0  # events behind the reorder window: judged as they came (see ordered_events)
    bad_reasons: Counter = field(default_factory=Counter)
    first_bad: list[str] = field(default_factory=list)

    def note_bad(self, origin: str, reason: str) -> None:
        self.bad += 1
        self.bad_reasons[reason.split(":")[0]] += 1
        if len(self.first_bad) < 5:
            self.first_bad.append(f"{origin}: {reason}")


def event_of(item: Item, derived: Any = frozenset()) -> tuple[Event | None, Any]:
    """Decode one input item, with its record (None when skipped undecoded); MalformedRecord
    for a bad one, None for an irrelevant one."""
    if isinstance(item, BadLine):
        raise MalformedRecord(item.reason)
    if item.raw is not None:
        return decode_record(item.raw, derived)
    return normalise(unwrap(item.data), derived), item.data


class Lineage:
    """Which keys were minted by an instance's key (AssumeRole), hop by hop, learnt as records
    are read: a derived key's calls carry no instance id, so a record signed with one is decoded
    again as derived. Keys not named for ``kept_ms`` of event time are forgotten."""

    def __init__(self, kept_ms: int = LINEAGE_KEPT_MS) -> None:
        self.kept_ms = kept_ms
        self.roots: set[str] = set()  # keys the instances were given
        self.children: dict[str, list[str]] = {}  # signer → keys its AssumeRoles minted
        self.hops: dict[str, int] = {}  # key → fewest AssumeRole hops from an instance's key
        self.named: dict[str, int] = {}  # key → event time it was last named
        self.now = 0  # the newest event time read
        self._swept = 0

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is derived: minted from an instance's key, within the depth."""
        return isinstance(key, str) and self.hops.get(key, 0) > 0 and key not in self.roots

    def note_event(self, event: Event) -> None:
        self.now = max(self.now, event.event_time)
        if isinstance(event, Issuance):
            self._root(event.access_key_id)
        elif isinstance(event, ApiCall):
            self._root(event.access_key_id)
            if event.derivation is not None:
                self._edge(event.access_key_id, event.derivation.child_key)

    def temporary_signers(self, item: Item, record: Any) -> list[str]:
        """Note a record that was no instance event (an AssumeRole it makes mints a key); the
        temporary keys that may have signed it (derived keys are temporary ones)."""
        if record is not None:
            identity = unwrap(record).get("userIdentity") if isinstance(record, dict) else None
            signer = identity.get("accessKeyId") if isinstance(identity, dict) else None
            if not isinstance(signer, str):
                return []
            child = minted_key(unwrap(record))
            if child is not None:
                self._edge(signer, child)
            keys = [signer]
        else:
            keys = [k.decode(errors="replace") for k in signing_keys(item.raw or b"")]
        return [key for key in dict.fromkeys(keys) if key.startswith("ASIA")]

    def any_derived(self, keys: list[str]) -> bool:
        found = False
        for key in keys:
            if key in self:
                self.named[key] = self.now
                found = True
        return found

    def sweep(self) -> None:
        """Forget keys not named for ``kept_ms``; checked once an hour of event time."""
        if self.now - self._swept < _SWEEP_EVERY_MS:
            return
        self._swept = self.now
        horizon = self.now - self.kept_ms
        for key in [k for k, at in self.named.items() if at < horizon]:
            del self.named[key]
            self.roots.discard(key)
            self.children.pop(key, None)
            self.hops.pop(key, None)

    def _root(self, key: str) -> None:
        self.named[key] = self.now
        if key not in self.roots:
            self.roots.add(key)
            self._reach(key, 0)

    def _edge(self, signer: str, child: str) -> None:
        self.named[signer] = self.named[child] = self.now
        children = self.children.setdefault(signer, [])
        if child not in children:
            children.append(child)
        if signer in self.hops:
            self._reach(child, self.hops[signer] + 1)

    def _reach(self, key: str, hops: int) -> None:
        stack = [(key, hops)]
        while stack:
            key, hops = stack.pop()
            if hops > MAX_DERIVATION_DEPTH or self.hops.get(key, hops + 1) <= hops:
                continue
            self.hops[key] = hops
            stack += [(child, hops + 1) for child in self.children.get(key, ())]


class Recheck:
    """A record no instance session signed, signed with a temporary key: looked at again when
    its turn comes, once every record near it in time has been read, in case an AssumeRole
    read after it minted its key."""

    __slots__ = ("event_time", "item", "keys")

    def __init__(self, event_time: int, item: Item, keys: list[str]) -> None:
        self.event_time = event_time
        self.item = item
        self.keys = keys


def _decoded(items: Iterable[Item], stats: RunStats,
             lineage: Lineage) -> Iterator[Event | Recheck]:
    """One input's events in its own order, a derived key's decoded as derived; the records
    that may yet prove a derived key's as ``Recheck``."""
    for item in items:
        stats.records += 1
        try:
            event, record = event_of(item)
            if event is not None:
                lineage.note_event(event)
                yield event
                continue
            keys = lineage.temporary_signers(item, record)
            if not keys:
                continue
            if lineage.any_derived(keys):
                event, _ = event_of(item, lineage)
                if event is not None:
                    yield event
                continue
            at = _time_of(item, record)
        except MalformedRecord as exc:
            stats.note_bad(item.origin, str(exc))
            continue
        if at is not None:
            yield Recheck(at, item, keys)


_EVENT_TIME = re.compile(rb'"eventTime"\s*:\s*"([^"\\]{1,40})"')


def _time_of(item: Item, record: Any) -> int | None:
    """A skipped record's event time, from its bytes where it was not decoded."""
    try:
        if record is None and isinstance(item, Record) and item.raw is not None:
            found = _EVENT_TIME.search(item.raw)
            if found is not None:
                return parse_time(found.group(1).decode())
            record = decode_json(item.raw)
        record = unwrap(record)
        return event_time_of(record) if isinstance(record, dict) else None
    except (MalformedRecord, ValueError, RecursionError):
        return None


def _recheck(held: Recheck, stats: RunStats, lineage: Lineage) -> Event | None:
    """A held record decoded again if a key that may have signed it is known derived now."""
    if not lineage.any_derived(held.keys):
        return None
    try:
        return event_of(held.item, lineage)[0]
    except MalformedRecord as exc:
        stats.note_bad(held.item.origin, str(exc))
        return None


def first_time(source: Source) -> int | None:
    """The event time of a file's first record that has one (None: none in its first few)."""
    if source.path is None:
        return None
    items = source.items(PEEK_CHUNK_BYTES)
    try:
        for _, item in zip(range(_PEEK_ITEMS), items, strict=False):
            if not isinstance(item, Record):
                continue
            try:
                record = item.data if item.raw is None else decode_json(item.raw)
                record = unwrap(record)
                if isinstance(record, dict):
                    return event_time_of(record)
            except (MalformedRecord, ValueError, RecursionError):
                continue
    finally:
        items.close()  # type: ignore[attr-defined]
    return None


def ordered_events(inputs: Sequence[Source] | Iterable[Item], stats: RunStats,
                   window: TimeRange | None = None,
                   reorder_s: int = DEFAULT_LATE_ARRIVAL_GRACE_S,
                   lineage: Lineage | None = None) -> Iterator[Event]:
    """Every input's events in ``order_key`` order, those in ``window`` only.

    The inputs (files, or one stream of items) are merged by event time: a file is opened when
    the merge reaches its first record's time, and read on while its next event is the earliest
    of all. An event is held until every input has moved ``reorder_s`` of event time past it,
    so records out of order by up to that much (within a file, or between files) are judged in
    order, as if the whole input had been sorted. An event that comes later still, behind one
    already judged, is judged as it comes (``stats.late``), as the stream judges a record that
    arrives late: a call whose key is unknown by then is judged without its issuance.
    """
    lineage = lineage if lineage is not None else Lineage()
    window = window if window is not None else TimeRange()
    reorder_ms = reorder_s * MS_PER_S
    buffer = ReorderBuffer()
    if isinstance(inputs, Sequence) and all(isinstance(s, Source) for s in inputs):
        sources: list[Source] = list(inputs)  # type: ignore[arg-type]
        stream: Iterable[Item] = ()
    else:
        sources = [Source("items")]
        stream = inputs  # type: ignore[assignment]

    def judged(value: Event | Recheck, late: bool) -> Iterator[Event]:
        if isinstance(value, Recheck):
            event = _recheck(value, stats, lineage)
            if event is None:
                return
            if not late:  # its place among the events of its millisecond, still held
                buffer.push(order_key(event), event)
                return
        else:
            event = value
        if late:
            stats.late += 1
        if not window.bounded or event.event_time in window:
            stats.relevant += 1
            yield event

    def released(before_ms: int | None) -> Iterator[Event]:
        for value in buffer.release(before_ms):
            yield from judged(value, False)

    # [next event time, input number, its next event (None: not opened), events or source]
    heap: list[list[Any]] = []
    for number, source in enumerate(sources):
        start = first_time(source) if source.path is not None else None
        heap.append([_UNKNOWN_START if start is None else start, number, None, source])
    heapq.heapify(heap)
    while heap:
        entry = heap[0]
        head = entry[2]
        if head is None:  # its turn: open it
            source = entry[3]
            if source.path is None and source.s3_reader is None:
                events: Iterator[Event | Recheck] = _decoded(stream, stats, lineage)
            else:
                events = _decoded(source.items(), stats, lineage)
                if source.small:
                    events = iter(list(events))
            entry[3] = events
        else:
            key = (recheck_key(head.event_time) if isinstance(head, Recheck)
                   else order_key(head))
            if not buffer.push(key, head):
                yield from judged(head, True)
        head = next(entry[3], None)
        if head is None:
            heapq.heappop(heap)
        else:
            entry[0], entry[2] = head.event_time, head
            heapq.heapreplace(heap, entry)
        if heap:
            yield from released(heap[0][0] - reorder_ms)
            lineage.sweep()
    yield from released(None)
