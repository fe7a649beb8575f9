"""The stall condition /readyz consults: records waiting and none read for longer than the
setting; times are handed in, so nothing here waits."""

from __future__ import annotations

from streams.app.readiness import Progress

TP = ("cloudtrail", 0)


def test_a_partition_with_records_waiting_and_no_progress_stalls():
    progress = Progress(stall_seconds=60)
    assert progress.stalled(0, [TP], {TP: 10}, {TP: 0}) == []
    assert progress.stalled(60, [TP], {TP: 10}, {TP: 0}) == []  # not longer than the setting yet
    assert progress.stalled(61, [TP], {TP: 10}, {TP: 0}) == [TP]


def test_reading_on_clears_a_stall_and_restarts_the_clock():
    progress = Progress(stall_seconds=60)
    progress.stalled(0, [TP], {TP: 10}, {TP: 0})
    assert progress.stalled(100, [TP], {TP: 10}, {TP: 0}) == [TP]
    progress.finished(*TP, 4)
    assert progress.stalled(101, [TP], {TP: 10}, {TP: 0}) == []
    assert progress.stalled(161, [TP], {TP: 10}, {TP: 0}) == []
    assert progress.stalled(162, [TP], {TP: 10}, {TP: 0}) == [TP]


def test_an_idle_partition_with_nothing_waiting_never_stalls():
    progress = Progress(stall_seconds=60)
    progress.finished(*TP, 9)
    assert progress.stalled(0, [TP], {TP: 10}, {}) == []
    assert progress.stalled(10_000, [TP], {TP: 10}, {}) == []
    assert progress.stalled(10_000, [TP], {TP: None}, {}) == []  # end offset not known yet


def test_a_revoked_partition_is_forgotten():
    progress = Progress(stall_seconds=60)
    progress.finished(*TP, 3)
    progress.stalled(0, [TP], {TP: 10}, {})
    assert progress.stalled(100, [], {}, {}) == []
    assert progress.next_offset == {} and progress.unchanged_since == {}
    # Assigned again, it reads from where the consumer starts it, with a fresh clock.
    assert progress.stalled(200, [TP], {TP: 10}, {TP: 8}) == []
    assert progress.stalled(261, [TP], {TP: 10}, {TP: 8}) == [TP]
