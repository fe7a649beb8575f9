"""The one consumer loop of every notifier: findings topic (its own consumer group, offsets
committed only after the notifier delivered the batch) or a JSON Lines file, batches handed to a
``Notifier``; records that cannot be read, or delivered, go to ``DeadLetters`` with the reason."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from streams.errors import UserError
from streams.kafka.codec import BadFinding, finding_codec
from streams.kafka.settings import KafkaSettings
from streams.offline.sinks import json_line

BATCH_SIZE = 100  # findings handed to a notifier at once; notifiers chunk to their API's limit


class DeliveryFailed(Exception):
    """The notifier could not deliver the batch; nothing is committed and the loop stops."""


class Notifier(Protocol):
    name: str

    def deliver(self, findings: list[dict[str, Any]]) -> None: ...

    def close(self) -> str: ...


class DeadLetters(Protocol):
    def send(self, finding: dict[str, Any] | None, reason: str, raw: bytes | None = None
             ) -> None: ...

    def close(self) -> str: ...


class DeadLetterFile:
    """Dead letters as JSON Lines ``{"reason": ..., "finding": ...}``, appended as they come."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0

    def send(self, finding: dict[str, Any] | None, reason: str, raw: bytes | None = None
             ) -> None:
        record: dict[str, Any] = {"reason": reason, "finding": finding}
        if finding is None and raw is not None:
            record["raw"] = raw.decode("utf-8", "replace")
        try:
            with open(self.path, "ab") as out:
                out.write(json_line(record))
        except OSError as exc:
            raise UserError(f"--dead-letter {self.path}: cannot write "
                            f"({exc.strerror or exc})") from None
        self.count += 1

    def close(self) -> str:
        return f"{self.count} dead-lettered to {self.path}" if self.count else "none dead-lettered"


class DeadLetterTopic:
    """Dead letters to a topic: the finding's bytes as read (or its JSON), reason in a header,
    like the worker's cloudtrail-dlq."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.count = 0
        self.failures: list[str] = []
        self.producer = Producer({**settings.confluent(), "acks": "all",
                                  "enable.idempotence": True})

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failures.append(err.str())

    def send(self, finding: dict[str, Any] | None, reason: str, raw: bytes | None = None
             ) -> None:
        value = raw if raw is not None else json_line(finding)
        key = finding["id"].encode() if finding else None
        self.producer.produce(self.topic, key=key, value=value,
                              headers=[("exfilguard.reason", reason.encode())],
                              on_delivery=self._on_delivery)
        # A dead letter is part of "delivered": the batch commits only once it is on the topic.
        if self.producer.flush(30) or self.failures:
            raise DeliveryFailed(f"dead letter to {self.topic} not delivered: "
                                 f"{self.failures[-1] if self.failures else 'timeout'}")
        self.count += 1

    def close(self) -> str:
        return f"{self.count} dead-lettered to {self.topic}" if self.count else "none dead-lettered"


@dataclass
class Tally:
    batches: int = 0
    findings: int = 0
    unreadable: int = 0

    def line(self) -> str:
        return (f"{self.findings} findings in {self.batches} batches"
                + (f", {self.unreadable} unreadable" if self.unreadable else ""))


def latest_per_id(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each id once, its last version in read order (a later message with the key updates)."""
    latest: dict[str, dict[str, Any]] = {}
    for finding in findings:
        latest.pop(finding["id"], None)
        latest[finding["id"]] = finding
    return list(latest.values())


def read_findings_file(path: str, dead: DeadLetters, tally: Tally) -> Iterator[dict[str, Any]]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise UserError(f"--from-file {path}: cannot read it ({exc.strerror or exc})") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                finding = json.loads(line)
                if not isinstance(finding, dict) or not isinstance(finding.get("id"), str):
                    raise ValueError("not a finding (no id)")
            except ValueError as exc:
                tally.unreadable += 1
                dead.send(None, f"{Path(path).name} line {number}: {exc}", raw=line)
                continue
            yield finding


def notify_from_file(path: str, notifier: Notifier, dead: DeadLetters,
                     batch_size: int = BATCH_SIZE) -> Tally:
    """The offline form: every finding of a JSON Lines file, in batches, nothing committed."""
    tally = Tally()
    batch: list[dict[str, Any]] = []
    for finding in read_findings_file(path, dead, tally):
        batch.append(finding)
        if len(batch) >= batch_size:
            _deliver(notifier, batch, tally)
            batch = []
    if batch:
        _deliver(notifier, batch, tally)
    return tally


def _deliver(notifier: Notifier, batch: list[dict[str, Any]], tally: Tally) -> None:
    findings = latest_per_id(batch)
    notifier.deliver(findings)
    tally.batches += 1
    tally.findings += len(findings)


def consumer_config(settings: KafkaSettings, group: str) -> dict[str, Any]:
    return {
        **settings.confluent(),
        "group.id": group,
        # Offsets move only after delivery: auto commit would lose a batch the notifier failed.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }


def notify_from_topic(settings: KafkaSettings, topic: str, group: str, notifier: Notifier,
                      dead: DeadLetters, batch_size: int = BATCH_SIZE,
                      idle_timeout: float | None = None) -> Tally:
    """Consume ``topic`` in ``group`` until SIGTERM/SIGINT or ``idle_timeout`` seconds without a
    message; after each batch is delivered (or dead-lettered), commit it."""
    from confluent_kafka import Consumer, KafkaException

    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, stop)
    # Every encoding the worker may write; Confluent framing reads its schema from the registry.
    codec = finding_codec(settings, topic, writing=False)
    consumer = Consumer(consumer_config(settings, group))
    consumer.subscribe([topic])
    tally = Tally()
    last_message = time.monotonic()
    try:
        while not stopping:
            messages = consumer.consume(num_messages=batch_size, timeout=0.5)
            if not messages:
                if idle_timeout is not None and time.monotonic() - last_message > idle_timeout:
                    break
                continue
            last_message = time.monotonic()
            batch: list[dict[str, Any]] = []
            for message in messages:
                if message.error():
                    if message.error().fatal() or not message.error().retriable():
                        raise UserError(f"consuming {topic}: {message.error().str()}")
                    continue
                try:
                    batch.append(codec.decode(message.value() or b""))
                except BadFinding as exc:
                    tally.unreadable += 1
                    dead.send(None, f"{topic}/{message.partition()}/{message.offset()}: {exc}",
                              raw=message.value())
            if batch:
                try:
                    _deliver(notifier, batch, tally)
                except DeliveryFailed as exc:
                    raise UserError(f"{notifier.name}: {exc}; nothing committed after the last "
                                    "delivered batch, so a restart delivers it again") from None
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:
                # Delivered but not committed: a restart delivers it again, and ids make that an
                # update, so this is not a loss.
                raise UserError(f"committing {topic} for {group}: {exc.args[0].str()}") from None
    finally:
        consumer.close()
        signal.signal(signal.SIGTERM, previous)
    return tally
