"""``exfilguard respond``'s notes, read back by the worker: the responses topic (compacted, keyed
by finding id, each value a finding with its ``service.additionalInfo.response``) followed from
its start by a consumer of its own, so the worker writes each note into every version of the
finding it emits afterwards, and once more, at once, when a note arrives or changes."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import msgspec

from streams.kafka.reader import QUIET
from streams.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


class ResponseNotes(threading.Thread):
    """Finding id → its latest response note, from the responses topic; commits nothing.
    ``caught_up`` is set once every note written before the start has been read."""

    def __init__(self, settings: KafkaSettings) -> None:
        super().__init__(name="exfilguard-responses", daemon=True)
        self.settings = settings
        self.topic = settings.topic_responses
        self.lock = threading.Lock()
        self.notes: dict[str, dict[str, Any]] = {}
        self.changed: set[str] = set()
        self.caught_up = threading.Event()
        self.stopping = threading.Event()
        self.read = self.unreadable = 0

    def ensure_started(self) -> None:
        with self.lock:
            if self.ident is None:
                self.start()

    def note(self, finding_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.notes.get(finding_id)

    def take_changed(self) -> list[str]:
        """The ids whose note arrived or changed since the last call."""
        with self.lock:
            changed, self.changed = sorted(self.changed), set()
            return changed

    def take(self, key: bytes | None, value: bytes | None) -> None:
        """One message of the topic: a noted finding, or a tombstone (the note withdrawn)."""
        if not key:
            self.unreadable += 1
            return
        finding_id = key.decode("utf-8", "replace")
        note = None
        if value:
            try:
                note = msgspec.json.decode(value)["service"]["additionalInfo"]["response"]
            except (msgspec.DecodeError, KeyError, TypeError):
                self.unreadable += 1
                log.warning("responses topic %s: the message for %s carries no response note; "
                            "ignored", self.topic, finding_id)
                return
        with self.lock:
            if note is None:
                self.notes.pop(finding_id, None)
            elif self.notes.get(finding_id) != note:
                self.notes[finding_id] = note
                self.changed.add(finding_id)
            self.read += 1

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._follow()
            except Exception as exc:  # the notes never take the worker down; the log says why
                log.error("responses: reading %s failed, again in 10 s: %s: %s", self.topic,
                          type(exc).__name__, exc)
                self.caught_up.set()  # do not hold a restart's republishing any longer
                self.stopping.wait(10)

    def _follow(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from streams.kafka.sink import ensure_output_topic

        ensure_output_topic(self.settings, self.topic)
        consumer = Consumer({**self.settings.confluent(),
                             "group.id": f"{self.settings.app_id}-responses-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest",
                             "log_level": 3,
                             # librdkafka's own lines (a refused connection every second while
                             # the broker is down) go nowhere: the worker's broker check says it
                             # once (broker_health), and a failed read is logged here.
                             "logger": QUIET})
        try:
            # A topic just created may take a moment to show its partitions.
            partitions: dict = {}
            while not partitions and not self.stopping.is_set():
                meta = consumer.list_topics(self.topic, timeout=30).topics[self.topic]
                partitions = meta.partitions if meta.error is None else {}
                if not partitions:
                    self.stopping.wait(0.5)
            assigned = [TopicPartition(self.topic, p, 0) for p in sorted(partitions)]
            consumer.assign(assigned)
            # Where the topic ended when the worker started: read that far, then caught up.
            ends = {p.partition: consumer.get_watermark_offsets(p, timeout=30)[1]
                    for p in assigned}
            position = {p: 0 for p in ends}
            while not self.stopping.is_set():
                if not self.caught_up.is_set() and all(position[p] >= end
                                                       for p, end in ends.items()):
                    log.info("responses: %d notes read from %s", len(self.notes), self.topic)
                    self.caught_up.set()
                message = consumer.poll(0.5)
                if message is None:  # past compacted-away offsets too
                    for tp in consumer.position(assigned):
                        position[tp.partition] = max(position[tp.partition], tp.offset)
                    continue
                if message.error():
                    continue
                position[message.partition()] = message.offset() + 1
                self.take(message.key(), message.value())
        finally:
            consumer.close()

    def wait_caught_up(self, seconds: float) -> bool:
        return self.caught_up.wait(seconds)
