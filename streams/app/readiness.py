"""A readiness condition /readyz consults: a worker with records waiting on an assigned
partition that reads none of them for longer than ``kafka.stall_seconds`` is not ready.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TopicPartition = tuple[str, int]


@dataclass
class Progress:
    """Per assigned partition: the next offset to read (the agents report each one done), and
    since when it has not moved."""

    stall_seconds: float
    next_offset: dict[TopicPartition, int] = field(default_factory=dict)
    unchanged_since: dict[TopicPartition, tuple[int, float]] = field(default_factory=dict)

    def finished(self, topic: str, partition: int, offset: int) -> None:
        self.next_offset[(topic, partition)] = offset + 1

    def stalled(self, now: float, assigned: Iterable[TopicPartition],
                end_offsets: Mapping[TopicPartition, int | None],
                start_offsets: Mapping[TopicPartition, int]) -> list[TopicPartition]:
        """The partitions with records waiting (end offset past the next to read) whose next
        offset has not moved for longer than ``stall_seconds``; ``now`` is monotonic time."""
        stalled = []
        assigned = set(assigned)
        for tp in set(self.unchanged_since) | set(self.next_offset):
            if tp not in assigned:  # revoked: it starts afresh if it comes back
                self.unchanged_since.pop(tp, None)
                self.next_offset.pop(tp, None)
        for tp in sorted(assigned):
            position = self.next_offset.get(tp, start_offsets.get(tp))
            end = end_offsets.get(tp)
            if position is None or end is None or end <= position:
                self.unchanged_since.pop(tp, None)
                continue
            seen = self.unchanged_since.get(tp)
            if seen is None or seen[0] != position:
                self.unchanged_since[tp] = (position, now)
            elif now - seen[1] > self.stall_seconds:
                stalled.append(tp)
        return stalled


class ConsumerProgress:
    """``Progress`` over a Faust app's consumer: its assignment and end offsets; where a
    partition is read from before any offset is done is its committed offset, or the log's
    start when nothing was committed."""

    def __init__(self, app: Any, progress: Progress, topics: Callable[[], set[str]]) -> None:
        self.app = app
        self.progress = progress
        self.topics = topics
        self.start_offsets: dict[TopicPartition, int] = {}

    async def stalled(self, now: float) -> list[TopicPartition]:
        consumer = self.app.consumer
        watched = self.topics()
        assigned = {tp for tp in consumer.assignment() if tp.topic in watched}
        names = {(tp.topic, tp.partition): tp for tp in assigned}
        for key in set(self.start_offsets) - names.keys():
            del self.start_offsets[key]
        missing = [tp for key, tp in names.items()
                   if key not in self.start_offsets and key not in self.progress.next_offset]
        if missing:
            await self._learn_start_offsets(consumer, missing)
        ends = {key: consumer.highwater(tp) for key, tp in names.items()}
        return self.progress.stalled(now, names, ends, self.start_offsets)

    async def _learn_start_offsets(self, consumer: Any, tps: list[Any]) -> None:
        committed = consumer._committed_offset  # Faust's view, read at assignment
        unknown = [tp for tp in tps if committed.get(tp) is None]
        earliest: Mapping[Any, int] = {}
        if unknown:
            query: Callable[..., Awaitable[Mapping[Any, int]]] = consumer.earliest_offsets
            earliest = await query(*unknown)
        for tp in tps:
            offset = committed.get(tp)
            offset = earliest.get(tp) if offset is None else offset
            if offset is not None:
                self.start_offsets[(tp.topic, tp.partition)] = offset
