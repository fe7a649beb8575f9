"""Where findings go: a small interface, handed in at the edge. A file of JSON Lines and a list
(tests) live here; a Kafka topic in Avro is ``streams.kafka.sink.TopicSink``; the stream's Faust
producer is ``streams.app.wiring``'s ``FindingsTopic``."""

from __future__ import annotations

import sys
from typing import Any, Protocol

import msgspec

from streams.errors import UserError

_encoder = msgspec.json.Encoder(order="deterministic")


class Sink(Protocol):
    def send(self, finding: dict[str, Any]) -> None: ...

    def close(self) -> str:
        """Deliver what is held; say where it went (for the command's closing note)."""
        ...


def json_line(value: Any) -> bytes:
    """One finding as one line: keys in a fixed order, so equal findings are equal bytes."""
    return _encoder.encode(value) + b"\n"


class JsonLinesSink:
    """Findings as JSON Lines to a file, or to stdout for ``-``, written whole when closed."""

    def __init__(self, path: str, option: str = "--output") -> None:
        self.path = path
        self.option = option
        self.lines: list[bytes] = []

    def send(self, finding: dict[str, Any]) -> None:
        self.lines.append(json_line(finding))

    def close(self) -> str:
        payload = b"".join(self.lines)
        if self.path == "-":
            sys.stdout.buffer.write(payload)
            sys.stdout.flush()
            return "written to stdout"
        try:
            with open(self.path, "wb") as out:
                out.write(payload)
        except OSError as exc:
            raise UserError(f"{self.option} {self.path}: cannot write ({exc.strerror or exc})"
                            ) from None
        return f"written to {self.path}"


class ListSink:
    """Findings kept in a list, for tests and for callers that score them."""

    def __init__(self) -> None:
        self.findings: list[dict[str, Any]] = []

    def send(self, finding: dict[str, Any]) -> None:
        self.findings.append(finding)

    def close(self) -> str:
        return f"{len(self.findings)} kept"


def deliver(findings: list[dict[str, Any]], sink: Sink) -> str:
    for finding in findings:
        sink.send(finding)
    return sink.close()
