"""A consumer of the findings topic, as ``exfilguard findings`` reads it: a throwaway group that
commits nothing, or a named one that commits as it goes."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer

from streams.errors import UserError
from streams.kafka.admin import metadata
from streams.kafka.settings import KafkaSettings


def findings_consumer(settings: KafkaSettings, topic: str, group: str | None,
                      from_beginning: bool) -> Consumer:
    """Subscribed to ``topic``, which must exist (one line saying how to make it otherwise)."""
    meta = metadata(settings)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise UserError(f"topic {topic} does not exist yet: start a worker (or `exfilguard "
                        "topics create`) first")
    consumer = Consumer({
        **settings.confluent(),
        "group.id": group or f"exfilguard-findings-{uuid.uuid4()}",
        "enable.auto.commit": bool(group),
        "auto.offset.reset": "earliest" if from_beginning else "latest",
    })
    consumer.subscribe([topic])
    return consumer
