"""Replay: the events of files or of a topic's time range, decoded and ordered as ``detect`` does,
for ``replay`` and ``backtest`` to run the core over with state of their own (the live worker's
group, offsets and tables are never touched)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from streams.core.records import Event
from streams.core.settings import DEFAULT_LATE_ARRIVAL_GRACE_S
from streams.core.timerange import TimeRange
from streams.kafka.reader import TopicStats, read_topic
from streams.kafka.settings import KafkaSettings
from streams.offline.events import RunStats, ordered_events
from streams.sources.files import Source


def events_of_files(sources: Sequence[Source], window: TimeRange,
                    reorder_s: int = DEFAULT_LATE_ARRIVAL_GRACE_S,
                    ) -> tuple[Iterator[Event], RunStats]:
    """The files' events in order, read as they are consumed (``stats`` fills meanwhile)."""
    stats = RunStats()
    return ordered_events(sources, stats, window, reorder_s), stats


def events_of_topic(settings: KafkaSettings, topic: str, window: TimeRange,
                    max_delay_ms: int | None, progress: Callable[[int], Any] | None = None,
                    reorder_s: int = DEFAULT_LATE_ARRIVAL_GRACE_S,
                    hold: int | None = None,
                    ) -> tuple[Iterator[Event], RunStats, TopicStats]:
    """A topic range's events; records the reader skipped undecoded still count as read. The
    range's records are read first (the forwarder's per-partition copies merged back into one
    record, in sorted runs on disk beyond a bound), then merged, decoded and ordered as the
    files' are, as they are taken; the topic's ``copies`` is complete once they all have been."""
    stats = RunStats()
    items, topic_stats = read_topic(settings, topic, window, max_delay_ms, progress,
                                    run_values=hold)
    stats.records += topic_stats.skipped
    return ordered_events(items, stats, window, reorder_s), stats, topic_stats
