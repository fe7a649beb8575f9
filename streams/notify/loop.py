"""The findings topic (or a JSON Lines file) read for a notifier, at least once: each finding is
handed over in order and its offset committed only after the notifier took it.
(A minimal loop of the webhook's own; the shared notifier consumer may replace it.)"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streams.errors import UserError
from streams.kafka.codec import BadFinding, finding_codec
from streams.kafka.settings import KafkaSettings

log = logging.getLogger("exfilguard.notify")

Handle = Callable[[dict[str, Any]], Any]


def findings_of_file(path: str) -> Iterator[dict[str, Any]]:
    """Findings from JSON Lines (what `exfilguard detect` writes); a bad line is named."""
    import json

    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"--input {path}: cannot read it ({exc.strerror or exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            finding = json.loads(line)
        except ValueError:
            raise UserError(f"--input {path}:{number}: not JSON; expected one finding per line "
                            "as `exfilguard detect` writes") from None
        if not isinstance(finding, dict) or "id" not in finding:
            raise UserError(f"--input {path}:{number}: not a finding (no id)")
        yield finding


def consume_findings(settings: KafkaSettings, handle: Handle, group: str,
                     topic: str | None = None, from_beginning: bool = False,
                     idle_timeout: float | None = None) -> tuple[int, int]:
    """Hand every finding of the topic to ``handle``; commit each after it returns.

    An exception from ``handle`` stops the loop with nothing committed for that finding, so the
    next run (or the restarted pod) hands it over again. Returns (findings, unreadable).
    """
    from confluent_kafka import Consumer, KafkaError

    from streams.kafka.admin import metadata

    topic = topic or settings.topic_findings
    meta = metadata(settings)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise UserError(f"topic {topic} does not exist yet: start a worker (or `exfilguard "
                        "topics create`) first")
    codec = finding_codec(settings, topic, writing=False)
    consumer = Consumer({
        **settings.confluent(),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
    })
    consumer.subscribe([topic])
    handled = unreadable = 0
    deadline = time.monotonic() + idle_timeout if idle_timeout else None
    try:
        while deadline is None or time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise UserError(f"consuming {topic}: {message.error().str()}")
            where = f"{topic}/{message.partition()}/{message.offset()}"
            try:
                finding = codec.decode(message.value() or b"")
            except BadFinding as exc:
                # Unreadable now means unreadable forever: name it and move on.
                unreadable += 1
                log.warning("skipped %s: %s", where, exc)
            else:
                handle(finding)
                handled += 1
            consumer.commit(message=message, asynchronous=False)
            if idle_timeout:
                deadline = time.monotonic() + idle_timeout
    finally:
        consumer.close()
    return handled, unreadable
