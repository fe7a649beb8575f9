"""Findings produced to a Kafka topic as the worker writes them (its encoding, keyed by id):
the sink ``replay --output-topic`` is handed."""

from __future__ import annotations

from typing import Any

from streams.errors import UserError
from streams.kafka.admin import FINDINGS_CONFIG, admin, metadata
from streams.kafka.codec import finding_codec
from streams.kafka.reader import QUIET
from streams.kafka.settings import KafkaSettings


def ensure_output_topic(settings: KafkaSettings, topic: str) -> None:
    """Create the findings output topic (compacted, like the findings topic) if missing."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    existing = metadata(settings).topics.get(topic)
    if existing is not None and existing.error is None:
        return
    client = admin(settings)
    new = NewTopic(topic, num_partitions=settings.partitions,
                   replication_factor=settings.replication_factor, config=FINDINGS_CONFIG)
    for name, future in client.create_topics([new], request_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise UserError(f"cannot create topic {name}: {exc.args[0].str()}") from None


def produce_findings(settings: KafkaSettings, topic: str, findings: list[dict[str, Any]],
                     timeout: float = 120.0) -> int:
    """Findings keyed by id, encoded as the worker writes them; every delivery checked."""
    from confluent_kafka import KafkaException, Producer

    ensure_output_topic(settings, topic)
    codec = finding_codec(settings, topic)
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            failures.append(err.str())
        else:
            delivered += 1

    producer = Producer({**settings.confluent(), "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": int(timeout * 1000), "logger": QUIET})
    for finding in findings:
        while True:
            try:
                producer.produce(topic, key=finding["id"].encode(), value=codec.encode(finding),
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.5)
            except KafkaException as exc:
                raise UserError(f"producing to {topic}: {exc.args[0].str()}") from None
        producer.poll(0)
    remaining = producer.flush(timeout)
    if failures or remaining:
        reason = failures[0] if failures else f"{remaining} not delivered in {timeout:.0f} s"
        raise UserError(f"{len(failures) + remaining} of {len(findings)} findings not delivered "
                        f"to {topic}: {reason}", exit_code=1)
    return delivered


class TopicSink:
    """Collects findings and produces them, every delivery checked, when closed."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.findings: list[dict[str, Any]] = []
        self.delivered = 0

    def send(self, finding: dict[str, Any]) -> None:
        self.findings.append(finding)

    def close(self) -> str:
        self.delivered = produce_findings(self.settings, self.topic, self.findings)
        return f"{self.delivered} delivered to {self.topic}"
