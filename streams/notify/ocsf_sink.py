"""Findings as OCSF Detection Findings to a topic (JSON, keyed by finding id, so a compacted
topic keeps each finding's latest version) or appended to a JSON Lines file: what Security Lake
custom sources, Splunk and Sentinel connectors read."""

from __future__ import annotations

from typing import Any

from streams.errors import UserError
from streams.kafka.settings import KafkaSettings
from streams.kafka.sink import ensure_output_topic
from streams.notify import consumer
from streams.notify.ocsf import to_ocsf
from streams.offline.sinks import json_line


class DeliveryFailed(consumer.DeliveryFailed, UserError):
    """The OCSF topic or file did not take a finding: nothing committed; one line, exit 1."""


class OcsfFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, lines: list[tuple[bytes, bytes]]) -> None:
        try:
            with open(self.path, "ab") as out:
                out.write(b"".join(value for _, value in lines))
        except OSError as exc:
            raise DeliveryFailed(f"--output {self.path}: cannot write "
                                 f"({exc.strerror or exc})", exit_code=1) from None

    def __str__(self) -> str:
        return self.path


class JsonTopic:
    """JSON values keyed by finding id to a topic (created compacted if missing)."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        from confluent_kafka import Producer

        ensure_output_topic(settings, topic)
        self.topic = topic
        self.producer = Producer({**settings.confluent(), "acks": "all",
                                  "enable.idempotence": True})

    def write(self, lines: list[tuple[bytes, bytes]]) -> None:
        failures: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err.str())

        for key, value in lines:
            self.producer.produce(self.topic, key=key, value=value, on_delivery=on_delivery)
        # The batch is delivered only once every message is on the topic: then it commits.
        if self.producer.flush(60) or failures:
            raise DeliveryFailed(f"topic {self.topic}: "
                                 f"{failures[0] if failures else 'delivery timed out'}; nothing "
                                 "committed, so a restart sends the batch again", exit_code=1)

    def __str__(self) -> str:
        return f"topic {self.topic}"


OcsfTopic = JsonTopic


class OcsfNotifier:
    """A ``consumer.Notifier``: every finding version, converted, written in one go a batch."""

    name = "ocsf"

    def __init__(self, out: OcsfFile | OcsfTopic, dead: consumer.DeadLetters) -> None:
        self.out, self.dead = out, dead
        self.written = 0

    def deliver(self, findings: list[dict[str, Any]]) -> None:
        lines = []
        for finding in findings:
            try:
                lines.append((finding["id"].encode(), json_line(to_ocsf(finding))))
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                self.dead.send(finding, f"ocsf: cannot map the finding ({type(exc).__name__}: "
                                        f"{exc})")
        self.out.write(lines)
        self.written += len(lines)

    def close(self) -> str:
        return f"{self.written} OCSF Detection Findings written to {self.out}"
