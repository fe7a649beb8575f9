"""Is the broker reachable? One readiness condition for /readyz, and a quieter log while it is not.

A worker with no broker makes aiokafka and Faust log the same errors hundreds of times a second;
``RepeatFilter`` lets each distinct message through once per interval and counts the rest, and
``BrokerReachability`` says once that the broker is gone, then one line per interval, then once
that it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger("exfilguard.worker")
NOISY = ("aiokafka", "faust", "mode", "kafka")


class RepeatFilter(logging.Filter):
    """Warnings and errors of the Kafka client loggers: the first of each message template per
    ``interval`` seconds passes, the others are counted; while muted, none passes."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed = 0
        self.muted = False  # while the broker is known down: our own line says it for them all

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(NOISY):
            return True
        if self.muted:
            self.suppressed += 1
            return False
        key = (record.name, str(record.msg))
        now = self.clock()
        if now - self.last.get(key, float("-inf")) < self.interval:
            self.suppressed += 1
            return False
        self.last[key] = now
        return True

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count


class BrokerReachability:
    """Ready while some bootstrap server accepted a connection in the last ``timeout`` seconds."""

    def __init__(self, bootstrap_servers: str, timeout: float, repeat_every: float,
                 repeats: RepeatFilter, clock: Callable[[], float] = time.monotonic) -> None:
        self.servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
        self.timeout = timeout
        self.repeat_every = repeat_every
        self.repeats = repeats
        self.clock = clock
        self.last_reached = clock()  # starting up counts as reached: the CLI checked it
        self.reported_down = False
        self.last_report = 0.0

    def ready(self) -> bool:
        return self.clock() - self.last_reached <= self.timeout

    async def probe(self, connect_timeout: float = 2.0) -> bool:
        """A TCP connection to any bootstrap server (TLS and SASL are the clients' business)."""
        for server in self.servers:
            host, _, port = server.rpartition(":")
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]") or server, int(port or 9092)),
                    connect_timeout)
            except (TimeoutError, OSError, ValueError):
                continue
            writer.close()
            return True
        return False

    def observe(self, reached: bool) -> None:
        """Fold one probe's outcome in; log the changes, and a line per interval while down."""
        now = self.clock()
        if reached:
            if self.reported_down:
                self.repeats.muted = False
                log.warning("Kafka at %s reachable again after %.0f s (%d client errors "
                            "suppressed); ready", ",".join(self.servers),
                            now - self.last_reached, self.repeats.take_suppressed())
            self.last_reached, self.reported_down = now, False
            return
        if not self.ready() and not self.reported_down:
            self.reported_down, self.last_report = True, now
            self.repeats.muted = True
            log.error("Kafka at %s unreachable for %.0f s: /readyz reports not ready; client "
                      "errors are counted, one line every %.0f s", ",".join(self.servers),
                      now - self.last_reached, self.repeat_every)
        elif self.reported_down and now - self.last_report >= self.repeat_every:
            self.last_report = now
            log.error("Kafka at %s still unreachable after %.0f s (%d client errors "
                      "suppressed)", ",".join(self.servers), now - self.last_reached,
                      self.repeats.take_suppressed())


def install_repeat_filter(repeats: RepeatFilter) -> None:
    """On every handler of the root logger (Faust's worker sets them up before the app starts),
    so records that propagate from any client logger pass through it."""
    for handler in logging.getLogger().handlers:
        if repeats not in handler.filters:
            handler.addFilter(repeats)
