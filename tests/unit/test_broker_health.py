"""The readiness condition on the broker and the log filter, on a hand-driven clock."""

from __future__ import annotations

import logging

from streams.app.broker_health import BrokerReachability, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, (), None)


def test_repeats_pass_once_per_interval_and_are_counted():
    clock = Clock()
    repeats = RepeatFilter(60, clock)
    assert repeats.filter(record("aiokafka.conn", "Unable connect to node %s"))
    assert not repeats.filter(record("aiokafka.conn", "Unable connect to node %s"))
    assert repeats.filter(record("aiokafka.cluster", "Unable to update metadata"))
    assert repeats.filter(record("exfilguard.worker", "ours always pass"))
    assert repeats.filter(record("aiokafka.conn", "info passes", logging.INFO))
    clock.now += 61
    assert repeats.filter(record("aiokafka.conn", "Unable connect to node %s"))
    assert repeats.take_suppressed() == 1 and repeats.take_suppressed() == 0


def test_down_once_then_one_line_per_interval_then_back_once(caplog):
    clock = Clock()
    repeats = RepeatFilter(10, clock)
    broker = BrokerReachability("127.0.0.1:9092", timeout=30, repeat_every=10, repeats=repeats,
                                clock=clock)
    caplog.set_level(logging.INFO, "exfilguard.worker")
    for _ in range(29):  # 29 s of failed probes: not yet past the setting
        clock.now += 1
        broker.observe(False)
    assert broker.ready() and not caplog.records
    clock.now += 2
    broker.observe(False)
    assert not broker.ready() and repeats.muted
    for _ in range(5):
        repeats.filter(record("aiokafka.conn", "Unable connect to node %s"))
    for _ in range(25):
        clock.now += 1
        broker.observe(False)
    clock.now += 1
    broker.observe(True)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages
    assert "unreachable for 31 s" in messages[0]
    assert "still unreachable" in messages[1] and "(5 client errors suppressed)" in messages[1]
    assert "still unreachable" in messages[2]
    assert "reachable again after 57 s" in messages[3]
    assert broker.ready() and not repeats.muted
