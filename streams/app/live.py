"""The live view (``kafka.web_live_view``): ``/`` on the worker's web port shows the open
findings of every partition, read from the findings topic by a consumer of its own."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from streams.kafka.codec import BadFinding, FindingCodec
from streams.kafka.reader import QUIET
from streams.kafka.settings import KafkaSettings
from streams.view.live import Board, fragment, page

log = logging.getLogger(__name__)


class FindingsFollower(threading.Thread):
    """Reads the findings topic from its start into a Board, until stopped; commits nothing."""

    def __init__(self, settings: KafkaSettings, codec: FindingCodec, board: Board) -> None:
        super().__init__(name="exfilguard-live-view", daemon=True)
        self.settings, self.codec, self.board = settings, codec, board
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.read = self.undecodable = 0

    def run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer({**self.settings.confluent(),
                             "group.id": f"{self.settings.app_id}-live-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest",
                             "log_level": 3,
                             # librdkafka's own lines (a refused connection every second while
                             # the broker is down) go nowhere: the worker's broker check says it
                             # once (broker_health), and a failed read is logged here.
                             "logger": QUIET})
        consumer.subscribe([self.settings.topic_findings])
        try:
            while not self.stopping.is_set():
                message = consumer.poll(0.5)
                if message is None or message.error() or not message.value():
                    continue  # a missing topic or a tombstone: nothing to show yet
                try:
                    finding = self.codec.decode(message.value())
                except BadFinding:
                    self.undecodable += 1
                    continue
                with self.lock:
                    self.board.update(finding)
                    self.read += 1
        except Exception as exc:  # the view never takes the worker down; the log says why
            log.error("live view: reading %s stopped: %s: %s", self.settings.topic_findings,
                      type(exc).__name__, exc)
        finally:
            consumer.close()

    def fragment(self) -> str:
        with self.lock:
            return fragment(self.board)


def install(app: Any, settings: KafkaSettings, codec: FindingCodec,
            refresh_seconds: int = 5) -> FindingsFollower:
    """Serve ``/`` and ``/live/fragment`` on the app's web server, fed by a follower."""
    follower = FindingsFollower(settings, codec, Board())

    @app.task
    async def start_live_view() -> None:
        if not follower.is_alive():
            follower.start()

    @app.on_before_shutdown.connect
    async def stop_follower(sender: Any = None, **kwargs: Any) -> None:
        follower.stopping.set()

    @app.page("/")
    async def live_view(web: Any, request: Any) -> Any:
        return web.html(page(refresh_seconds))

    @app.page("/live/fragment")
    async def live_fragment(web: Any, request: Any) -> Any:
        return web.html(follower.fragment())

    return follower
