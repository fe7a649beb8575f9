"""The events of offline inputs in the order the stream judges them, in bounded memory: each file
read incrementally, the files merged by event time, and a reorder window of event time (the
stream's ``late_arrival_grace_seconds``) putting right each file's own disorder. Nothing is held
for the whole input: memory follows the window, not the number of records."""

from __future__ import annotations

import heapq
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from streams.core.detector import MAX_DERIVATION_DEPTH
from streams.core.order import ReorderBuffer, order_key
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
from streams.core.settings import DEFAULT_LATE_ARRIVAL_GRACE_S
from streams.core.timerange import TimeRange
from streams.core.times import MS_PER_S, parse_time
from streams.sources.files import PEEK_CHUNK_BYTES, BadLine, Item, Source

# A minted key works at most 12 hours (AssumeRole's longest session): what the lineage knows of
# a key goes this long after the key was last named (beyond the detector's own grace for it).
LINEAGE_KEPT_MS = 12 * 3600 * MS_PER_S
_SWEEP_EVERY_MS = 3600 * MS_PER_S
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
    again as derived. A record signed with a temporary key not known derived is parked for
    ``parked_ms`` of event time, in case an AssumeRole read after it minted its key. Keys not
    named for ``kept_ms`` of event time are forgotten."""

    def __init__(self, kept_ms: int = LINEAGE_KEPT_MS,
                 parked_ms: int = DEFAULT_LATE_ARRIVAL_GRACE_S * MS_PER_S) -> None:
        self.kept_ms = kept_ms
        self.parked_ms = parked_ms
        # key → its parked records, each in a holder shared by every key the record names
        # (taken once); and (newest time when parked, key) in the order parked, to let go.
        self.parked: dict[str, list[list[Item | None]]] = {}
        self._parked_order: deque[tuple[int, str]] = deque()
        self.ready: list[Item] = []  # parked records whose key proved derived
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
        if not self.now and self._parked_order:  # parked before any time was known: from now
            self._parked_order = deque((event.event_time, key) for _, key in self._parked_order)
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

    def park(self, item: Item, keys: list[str]) -> None:
        holder: list[Item | None] = [item]
        for key in keys:
            self.parked.setdefault(key, []).append(holder)
            self._parked_order.append((self.now, key))
        order, horizon = self._parked_order, self.now - self.parked_ms
        while order and order[0][0] < horizon:
            _, key = order.popleft()
            held = self.parked.get(key)
            if held:
                held.pop(0)
                if not held:
                    del self.parked[key]

    def take_ready(self) -> list[Item]:
        ready, self.ready = self.ready, []
        return ready

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
            if hops and key in self.parked and key not in self.roots:
                for holder in self.parked.pop(key):
                    if holder[0] is not None:
                        self.ready.append(holder[0])
                        holder[0] = None
            stack += [(child, hops + 1) for child in self.children.get(key, ())]


def _decoded(items: Iterable[Item], stats: RunStats, lineage: Lineage) -> Iterator[Event]:
    """One input's events in its own order, a derived key's decoded as derived: at once when
    its key is known derived, else when an AssumeRole read soon after mints it."""
    for item in items:
        stats.records += 1
        try:
            event, record = event_of(item)
            if event is not None:
                lineage.note_event(event)
            else:
                keys = lineage.temporary_signers(item, record)
                if keys and lineage.any_derived(keys):
                    event, _ = event_of(item, lineage)
                elif keys:
                    lineage.park(item, keys)
        except MalformedRecord as exc:
            stats.note_bad(item.origin, str(exc))
            continue
        if event is not None:
            yield event
        if lineage.ready:
            for parked in lineage.take_ready():
                try:
                    event, _ = event_of(parked, lineage)
                except MalformedRecord as exc:
                    stats.note_bad(parked.origin, str(exc))
                    continue
                if event is not None:
                    yield event


# A file's events are sorted in runs of this many before the merge, as ``exfilguard forward``
# sorts a file's records (in runs of its SORT_CHUNK records) before they reach the stream: a
# file whose records are out of order by more than the reorder window (scenarios concatenated,
# a hand-made extract) is then judged as a full sort, and the forwarded stream, judge it. Any
# CloudTrail delivery file (at most a few thousand records) is one run; memory stays bounded.
SORTED_RUN_EVENTS = 10_000


def sorted_runs(events: Iterable[Event], run: int | None = None) -> Iterator[Event]:
    run = run or SORTED_RUN_EVENTS
    events = iter(events)
    while True:
        chunk = list(islice(events, run))
        if not chunk:
            return
        chunk.sort(key=order_key)
        yield from chunk
        if len(chunk) < run:
            return


_EVENT_TIME = re.compile(rb'"eventTime"\s*:\s*"([^"\\]{1,64})"')


def first_time(source: Source) -> int | None:
    """The first ``eventTime`` in a file's first bytes, found without decoding the file (None:
    none there, or none that parses: the file is opened first)."""
    if source.path is None:
        return None
    found = _EVENT_TIME.search(source.head(PEEK_CHUNK_BYTES))
    try:
        return parse_time(found.group(1).decode()) if found else None
    except (ValueError, UnicodeDecodeError):
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
    lineage = lineage if lineage is not None else Lineage(parked_ms=reorder_s * MS_PER_S)
    window = window if window is not None else TimeRange()
    reorder_ms = reorder_s * MS_PER_S
    buffer = ReorderBuffer()
    if isinstance(inputs, Sequence) and all(isinstance(s, Source) for s in inputs):
        sources: list[Source] = list(inputs)  # type: ignore[arg-type]
        stream: Iterable[Item] = ()
    else:
        sources = [Source("items")]
        stream = inputs  # type: ignore[assignment]

    def judged(event: Event, late: bool) -> Iterator[Event]:
        if late:
            stats.late += 1
        if not window.bounded or event.event_time in window:
            stats.relevant += 1
            yield event

    def released(before_ms: int | None) -> Iterator[Event]:
        for event in buffer.release(before_ms):
            yield from judged(event, False)

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
                events: Iterator[Event] = sorted_runs(_decoded(stream, stats, lineage))
            else:
                events = sorted_runs(_decoded(source.items(), stats, lineage))
            entry[3] = events
        else:
            if not buffer.push(order_key(head), head):
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
