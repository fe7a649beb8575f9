"""The shapes a finding can be printed in: ``guardduty`` (as produced, the default), ``asff``
(Security Hub) and ``ocsf`` (Detection Finding); ``--format`` of findings, detect and replay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.notify.asff import to_asff
from streams.notify.ocsf import to_ocsf

FORMATS = ("guardduty", "asff", "ocsf")
_RENDER: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "guardduty": lambda finding: finding, "asff": to_asff, "ocsf": to_ocsf}


def formatted(finding: dict[str, Any], shape: str) -> dict[str, Any]:
    return _RENDER[shape](finding)


class FormattedSink:
    """An ``offline.sinks.Sink`` that hands each finding on in another shape."""

    def __init__(self, sink: Any, shape: str) -> None:
        self.sink, self.shape = sink, shape

    def send(self, finding: dict[str, Any]) -> None:
        self.sink.send(formatted(finding, self.shape))

    def close(self) -> str:
        return self.sink.close()
