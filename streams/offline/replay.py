"""Replay: the events of files or of a topic's time range, decoded and sorted as ``detect`` does,
for ``replay`` and ``backtest`` to run the core over with state of their own (the live worker's
group, offsets and tables are never touched)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streams.core.records import Event
from streams.core.timerange import TimeRange
from streams.kafka.reader import TopicStats, read_topic
from streams.kafka.settings import KafkaSettings
from streams.offline.run import RunStats, load_events
from streams.sources.files import Item


def events_of_files(items: Iterable[Item], window: TimeRange) -> tuple[list[Event], RunStats]:
    stats = RunStats()
    return load_events(items, window, stats), stats


def events_of_topic(settings: KafkaSettings, topic: str, window: TimeRange,
                    max_delay_ms: int | None, progress: Callable[[int], Any] | None = None,
                    ) -> tuple[list[Event], RunStats, TopicStats]:
    """A topic range's events; records the reader skipped undecoded still count as read."""
    stats = RunStats()
    items, topic_stats = read_topic(settings, topic, window, max_delay_ms, progress)
    events = load_events(items, window, stats)
    stats.records += topic_stats.skipped
    return events, stats, topic_stats
