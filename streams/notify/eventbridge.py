"""Findings to Amazon EventBridge as GuardDuty's events: ``detail-type`` "GuardDuty Finding",
``detail`` the finding (GuardDuty's shape), source ``exfilguard`` (``aws.`` sources are AWS's
own), so a GuardDuty rule needs one more source. New and changed findings only."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.errors import UserError
from streams.notify import consumer

log = logging.getLogger("exfilguard.notify.eventbridge")

DETAIL_TYPE = "GuardDuty Finding"  # GuardDuty's own, so rules matching it match these too
DEFAULT_SOURCE = "exfilguard"
MAX_PER_CALL = 10  # PutEvents takes at most 10 entries a request
DEFAULT_ATTEMPTS = 3
BACKOFF_FIRST_SECONDS = 1.0


class DeliveryFailed(consumer.DeliveryFailed, UserError):
    """EventBridge refused the call itself: nothing is committed; one line, exit 1."""


def digest(finding: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(finding, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class PutState:
    """The digest of the version last put per finding id: a redelivery puts nothing. In a small
    JSON file when a path is given."""

    path: Path | None = None
    digests: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | None) -> PutState:
        if path is None or not Path(path).exists():
            return cls(Path(path) if path else None)
        try:
            data = json.loads(Path(path).read_text("utf-8"))
            return cls(Path(path), {str(k): str(v) for k, v in data["put"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"--state {path}: not an eventbridge state file ({exc}); move it "
                            "away to start afresh (findings are then put again)") from None

    def changed(self, finding: dict[str, Any]) -> bool:
        return self.digests.get(finding["id"]) != digest(finding)

    def record(self, findings: list[dict[str, Any]]) -> None:
        self.digests.update({f["id"]: digest(f) for f in findings})
        if self.path is None or not findings:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False,
                                         suffix=".tmp", encoding="utf-8") as out:
            json.dump({"put": self.digests}, out)
        os.replace(out.name, self.path)


def event_entry(finding: dict[str, Any], bus: str, source: str = DEFAULT_SOURCE
                ) -> dict[str, Any]:
    """A PutEvents entry; EventBridge wraps it as GuardDuty's event (version, id, account, time,
    region, resources, detail)."""
    partition = finding.get("partition") or "aws"
    instance = finding["resource"]["instanceDetails"]["instanceId"]
    return {
        "Source": source,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(finding, separators=(",", ":")),
        # An access key has no ARN; the instance is the resource a rule may match on.
        "Resources": [
            f"arn:{partition}:ec2:{finding['region']}:{finding['accountId']}:instance/{instance}"],
        "EventBusName": bus,
    }


class EventBridgeNotifier:
    """A ``consumer.Notifier``: each new or changed version put once on the bus."""

    name = "eventbridge"

    def __init__(self, client: Any, dead: consumer.DeadLetters, bus: str = "default",
                 source: str = DEFAULT_SOURCE, state: PutState | None = None,
                 attempts: int = DEFAULT_ATTEMPTS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.dead, self.bus, self.source = client, dead, bus, source
        self.state = state or PutState()
        self.attempts = max(1, attempts)
        self._sleep = sleep
        self.put = self.unchanged = self.retried = self.dead_lettered = self.calls = 0

    def deliver(self, findings: list[dict[str, Any]]) -> None:
        fresh = [f for f in findings if self.state.changed(f)]
        self.unchanged += len(findings) - len(fresh)
        for start in range(0, len(fresh), MAX_PER_CALL):
            chunk = fresh[start:start + MAX_PER_CALL]
            self._put(chunk)
            self.state.record(chunk)

    def _put(self, findings: list[dict[str, Any]]) -> None:
        pending = list(findings)
        reasons: list[str] = []
        delay = BACKOFF_FIRST_SECONDS
        for attempt in range(1, self.attempts + 1):
            answer = self._call([event_entry(f, self.bus, self.source) for f in pending])
            # Entries answer in request order; a failed one has ErrorCode instead of EventId.
            failed = [(f, f"{e.get('ErrorCode')}: {e.get('ErrorMessage', '')}")
                      for f, e in zip(pending, answer.get("Entries", []), strict=False)
                      if e.get("ErrorCode")]
            self.put += len(pending) - len(failed)
            pending, reasons = [f for f, _ in failed], [r for _, r in failed]
            if not pending or attempt == self.attempts:
                break
            self.retried += len(pending)
            log.warning("eventbridge refused %d events (first: %s); retry %d of %d in %.0f s",
                        len(pending), reasons[0], attempt, self.attempts - 1, delay)
            self._sleep(delay)
            delay *= 2
        for finding, reason in zip(pending, reasons, strict=True):
            log.warning("finding %s dead-lettered: %s", finding["id"], reason)
            self.dead.send(finding, f"eventbridge PutEvents after {self.attempts} attempts: "
                                    f"{reason}")
            self.dead_lettered += 1

    def _call(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        self.calls += 1
        try:
            return self.client.put_events(Entries=entries)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DeliveryFailed(f"eventbridge PutEvents to bus {self.bus}: {error.get('Code')}: "
                                 f"{error.get('Message')}; check the bus exists and the role may "
                                 "call events:PutEvents on it", exit_code=1) from None
        except BotoCoreError as exc:
            raise DeliveryFailed(f"eventbridge PutEvents: {exc}", exit_code=1) from None

    def close(self) -> str:
        return (f"{self.put} events put on bus {self.bus} in {self.calls} calls, "
                f"{self.unchanged} unchanged not sent, {self.retried} retried, "
                f"{self.dead_lettered} refused")
