"""The Kafka side of ``forward --follow``: one transactional producer, and a compacted topic of
per-folder cursors written in the same transaction as the records they cover.

A restarted forwarder (same sources, so the same ``transactional.id``) aborts what a killed one
left open and reads the committed cursors: every object is forwarded once.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from streams.errors import UserError
from streams.kafka.forwarder import ForwardStats, messages, producer_config, sorted_batches
from streams.kafka.settings import KafkaSettings
from streams.sources.files import split_document


def cursor_topic_name(settings: KafkaSettings) -> str:
    return f"{settings.app_id}-forwarder-cursors"


def transactional_id(settings: KafkaSettings, sources: list[str]) -> str:
    """Stable for a set of sources: a restarted forwarder fences the one it replaces."""
    digest = hashlib.sha256("\n".join(sorted(sources)).encode()).hexdigest()[:12]
    return f"{settings.app_id}-forwarder-{digest}"


class KafkaFollower:
    """The transactional producer and the cursor topic of one following forwarder."""

    def __init__(self, settings: KafkaSettings, topic: str, partitions: int, txn_id: str,
                 cursor_topic: str, batch_records: int) -> None:
        self.settings = settings
        self.topic = topic
        self.partitions = partitions
        self.cursor_topic = cursor_topic
        self.batch_records = batch_records
        self.txn_id = txn_id
        self.producer = Producer({**producer_config(settings), "transactional.id": txn_id,
                                  "transaction.timeout.ms": 120_000})
        try:
            # Aborts whatever a killed predecessor left open, and fences it if it still runs.
            self.producer.init_transactions(60)
        except KafkaException as exc:
            raise UserError(f"cannot start a Kafka transaction ({exc.args[0].str()}): the "
                            "broker must allow transactions (transaction.state.log.* settings)"
                            ) from None

    def ensure_cursor_topic(self, admin: Any) -> None:
        topic = NewTopic(self.cursor_topic, num_partitions=1,
                         replication_factor=self.settings.replication_factor,
                         config={"cleanup.policy": "compact"})
        for name, future in admin.create_topics([topic], request_timeout=10).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise UserError(f"cannot create topic {name}: {exc.args[0].str()}") from None

    def load(self, cursors: Any) -> Any:
        """Every committed cursor (read after ``init_transactions``, so nothing is pending)."""
        consumer = Consumer({**self.settings.confluent(), "group.id": f"cursors-{uuid.uuid4()}",
                             "enable.auto.commit": False, "isolation.level": "read_committed",
                             "enable.partition.eof": True})
        try:
            meta = consumer.list_topics(self.cursor_topic, timeout=10)
            parts = list(meta.topics[self.cursor_topic].partitions)
            from confluent_kafka import TopicPartition

            consumer.assign([TopicPartition(self.cursor_topic, p, OFFSET_BEGINNING)
                             for p in parts])
            open_parts = set(parts)
            deadline = time.monotonic() + 120
            while open_parts and time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        open_parts.discard(message.partition())
                        continue
                    raise UserError(f"reading {self.cursor_topic}: {message.error().str()}")
                url = (message.key() or b"").decode()
                if message.value() is None:
                    cursors.seen.pop(url, None)
                else:
                    cursors.seen[url] = set(json.loads(message.value())["seen"])
            if open_parts:
                raise UserError(f"reading {self.cursor_topic}: not at its end in 120 s")
        finally:
            consumer.close()
        return cursors

    def forward(self, read: Callable[[str, str], bytes], batch: list[tuple[Any, list[str]]],
                cursors: Any) -> ForwardStats:
        """The records of these objects and their folders' new cursors, in one transaction."""
        stats = ForwardStats()
        failures: list[str] = []

        def delivered(err, msg) -> None:
            if err is not None:
                failures.append(err.str())
            else:
                stats.delivered += 1

        def items():
            for found, keys in batch:
                for key in keys:
                    yield from split_document(read(found.bucket, key),
                                              f"s3://{found.bucket}/{key}")

        producer = self.producer
        producer.begin_transaction()
        try:
            for message in messages(sorted_batches(items(), stats), self.partitions,
                                    self.batch_records):
                kwargs = {"partition": message.partition} if message.partition is not None else {}
                while True:
                    try:
                        producer.produce(self.topic, value=message.value, key=message.key,
                                         timestamp=message.timestamp, headers=message.headers,
                                         on_delivery=delivered, **kwargs)
                        break
                    except BufferError:
                        producer.poll(0.5)
                stats.messages += 1
                producer.poll(0)
            updated: dict[str, set[str]] = {}
            for found, keys in batch:
                folder = found.folder_url.split("/", 3)[-1]
                names = updated.setdefault(found.folder_url,
                                           set(cursors.seen.get(found.folder_url, ())))
                names.update(k[len(folder):] for k in keys)
            for url, names in updated.items():
                producer.produce(self.cursor_topic, key=url.encode(),
                                 value=json.dumps({"seen": sorted(names)}).encode(),
                                 on_delivery=delivered)
            producer.commit_transaction(120)
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                raise UserError(f"Kafka transaction {self.txn_id}: {error.str()} (another "
                                "forwarder with the same sources took over?)") from None
            producer.abort_transaction(60)
            stats.failed = max(1, len(failures))
            stats.first_failure = failures[0] if failures else error.str()
            return stats
        except BaseException:
            producer.abort_transaction(60)
            raise
        if failures:  # not expected: a commit succeeds only once every message is delivered
            stats.failed, stats.first_failure = len(failures), failures[0]
            return stats
        cursors.seen.update(updated)
        return stats
