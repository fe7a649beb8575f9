"""``forward --follow``: poll S3 prefixes for new CloudTrail objects, a cursor per folder.

CloudTrail writes ``AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/``; one ``StartAfter`` over the
whole prefix would never see a new ``us-east-1`` object after a ``us-west-2`` one, so every folder
keeps the set of objects it has forwarded. The cursors live in a compacted Kafka topic and are
written in the same Kafka transaction as the records they cover: a forwarder killed at any point
and restarted (on any pod) forwards every object once.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from streams.aws.s3 import is_digest, list_folder, parse_url, read_object
from streams.errors import UserError
from streams.forwarder import ForwardStats, messages, producer_config, sorted_batches
from streams.inputs import split_document
from streams.settings import KafkaSettings

# A day folder and the partial dates above it, under CloudTrail/REGION/.
_DATED = re.compile(r"^(?P<region>(?:.*/)?CloudTrail/[^/]+/)(?P<y>\d{4})/(?:(?P<m>\d{2})/"
                    r"(?:(?P<d>\d{2})/)?)?$")
# Events reach S3 within ~15 minutes, so around midnight the day before still gets objects.
FOLLOW_DAYS = 2
OBJECTS_PER_TRANSACTION = 100


def cursor_topic_name(settings: KafkaSettings) -> str:
    return f"{settings.app_id}-forwarder-cursors"


def transactional_id(settings: KafkaSettings, sources: list[str]) -> str:
    """Stable for a set of sources: a restarted forwarder fences the one it replaces."""
    digest = hashlib.sha256("\n".join(sorted(sources)).encode()).hexdigest()[:12]
    return f"{settings.app_id}-forwarder-{digest}"


def _dated(folder: str) -> tuple[str, date, date] | None:
    """(region folder, first day, last day) a dated folder covers; None for any other folder."""
    match = _DATED.match(folder)
    if match is None:
        return None
    year = int(match["y"])
    try:
        if match["d"]:
            day = date(year, int(match["m"]), int(match["d"]))
            return match["region"], day, day
        if match["m"]:
            month = int(match["m"])
            first = date(year, month, 1)
            last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))
            return match["region"], first, last
        return match["region"], date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        return None


@dataclass
class Cursors:
    """Per folder (``s3://bucket/folder``), the names of the objects already forwarded."""

    seen: dict[str, set[str]] = field(default_factory=dict)

    def floors(self, follow_days: int) -> dict[str, date]:
        """Per region folder, the oldest day still listed: the newest day minus the window."""
        newest: dict[str, date] = {}
        for url in self.seen:
            _, _, bucket, folder = (url.split("/", 3) + ["", "", ""])[:4]
            dated = _dated(folder)
            if dated is not None:
                region = f"s3://{bucket}/{dated[0]}"
                newest[region] = max(newest.get(region, dated[2]), dated[2])
        return {r: d - timedelta(days=follow_days - 1) for r, d in newest.items()}


@dataclass(frozen=True)
class Found:
    folder_url: str  # s3://bucket/folder/
    bucket: str
    keys: list[str]  # new objects, oldest name first


def new_objects(client: Any, source: str, cursors: Cursors, follow_days: int = FOLLOW_DAYS,
                digests: Callable[[str], None] = lambda folder: None) -> Iterator[Found]:
    """Walk the prefix folder by folder; folders of days older than each region's window are
    not listed again (their objects were forwarded), digest folders never."""
    bucket, prefix = parse_url(source)
    floors = cursors.floors(follow_days)
    stack = [prefix]
    while stack:
        folder = stack.pop()
        subfolders, keys = list_folder(client, bucket, folder)
        url = f"s3://{bucket}/{folder}"
        seen = cursors.seen.get(url, set())
        fresh = [k for k in keys if k[len(folder):] not in seen and not is_digest(k)]
        if fresh:
            yield Found(url, bucket, fresh)
        for sub in reversed(subfolders):  # popped oldest first
            if is_digest(sub):
                digests(f"s3://{bucket}/{sub}")
                continue
            dated = _dated(sub)
            if dated is not None:
                floor = floors.get(f"s3://{bucket}/{dated[0]}")
                if floor is not None and dated[2] < floor:
                    continue
            stack.append(sub)


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

    def load(self) -> Cursors:
        """Every committed cursor (read after ``init_transactions``, so nothing is pending)."""
        consumer = Consumer({**self.settings.confluent(), "group.id": f"cursors-{uuid.uuid4()}",
                             "enable.auto.commit": False, "isolation.level": "read_committed",
                             "enable.partition.eof": True})
        cursors = Cursors()
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

    def forward(self, client: Any, batch: list[tuple[Found, list[str]]], cursors: Cursors,
                ) -> ForwardStats:
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
                    yield from split_document(read_object(client, found.bucket, key),
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
