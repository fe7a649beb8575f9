"""Findings to a chat channel or any HTTP endpoint: one readable message per new finding and per
severity change (Slack Block Kit for Slack's webhook hosts, plain JSON elsewhere), retried with
backoff, at a bounded rate; the URL is a secret and is never logged, only its host."""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streams.errors import UserError
from streams.notify import consumer

log = logging.getLogger("exfilguard.notify.webhook")

SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
SEVERITY_LABELS = {8: "HIGH", 5: "MEDIUM", 2: "LOW"}
USER_AGENT = "exfilguard-webhook"
# Slack accepts about one message a second per webhook; 30 a minute leaves room for bursts
# of findings without ever being throttled.
DEFAULT_PER_MINUTE = 30
DEFAULT_ATTEMPTS = 6
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 10.0


class DeliveryFailed(consumer.DeliveryFailed, UserError):
    """The endpoint did not take a message after every retry, or refused it for good: the
    shared loop stops before its commit, and the command exits with this one line."""


def shown(url: str) -> str:
    """What messages may say about the URL: its scheme and host, never the secret path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def is_slack(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in SLACK_HOSTS


def read_url(url_env: str | None = None, url_file: str | None = None,
             environ: dict[str, str] | None = None) -> str:
    """The webhook URL from an environment variable or a file (a mounted Secret)."""
    environ = os.environ if environ is None else environ
    if url_env:
        url = environ.get(url_env, "").strip()
        if not url:
            raise UserError(f"--url-env {url_env}: the variable is not set or empty")
        where = f"--url-env {url_env}"
    elif url_file:
        try:
            url = Path(url_file).read_text("utf-8").strip()
        except OSError as exc:
            raise UserError(f"--url-file {url_file}: cannot read it "
                            f"({exc.strerror or exc})") from None
        where = f"--url-file {url_file}"
    else:
        raise UserError("give the webhook URL with --url-env VAR or --url-file FILE")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        # The value itself is a secret: say what is wrong without printing it.
        raise UserError(f"{where}: not an http(s) URL")
    return url


# -- what is sent ---------------------------------------------------------------------------------

def _facts(finding: dict[str, Any]) -> dict[str, Any]:
    action = finding["service"]["action"]["awsApiCallAction"]
    ip = action.get("remoteIpDetails") or {}
    remote_account = (action.get("remoteAccountDetails") or {}).get("accountId")
    country = ((ip.get("country") or {}).get("countryCode"))
    org = ((ip.get("organization") or {}).get("asnOrg"))
    return {
        "instance": finding["resource"]["instanceDetails"]["instanceId"],
        "access_key": finding["resource"]["accessKeyDetails"]["accessKeyId"],
        "role": finding["resource"]["accessKeyDetails"].get("userName"),
        "remote_ip": ip.get("ipAddressV4") or ip.get("ipAddressV6"),
        "remote_account": remote_account,
        "remote_where": ", ".join(x for x in (country, org) if x) or None,
        "count": finding["service"]["count"],
        "first_seen": finding["service"]["eventFirstSeen"],
        "last_seen": finding["service"]["eventLastSeen"],
        "rule": (finding.get("evidence") or {}).get("rule"),
    }


def headline(finding: dict[str, Any], event: str, previous: int | None) -> str:
    label = SEVERITY_LABELS.get(finding["severity"], str(finding["severity"]))
    short = finding["type"].rsplit("/", 1)[-1]
    if event == "severity_changed":
        before = SEVERITY_LABELS.get(previous, str(previous))  # type: ignore[arg-type]
        return f"{label} (was {before}) {short} in account {finding['accountId']}"
    return f"{label} {short} in account {finding['accountId']}"


def json_message(finding: dict[str, Any], event: str, previous: int | None) -> dict[str, Any]:
    return {
        "event": event,                       # new | severity_changed
        "finding_id": finding["id"],
        "type": finding["type"],
        "severity": finding["severity"],
        "severity_label": SEVERITY_LABELS.get(finding["severity"]),
        "previous_severity": previous,
        "title": finding["title"],
        "summary": headline(finding, event, previous),
        "account_id": finding["accountId"],
        "region": finding["region"],
        **_facts(finding),
        "finding": finding,
    }


def slack_message(finding: dict[str, Any], event: str, previous: int | None) -> dict[str, Any]:
    facts = _facts(finding)
    remote = facts["remote_account"] and f"account {facts['remote_account']}"
    remote = remote or facts["remote_ip"] or "?"
    if facts["remote_where"]:
        remote += f" ({facts['remote_where']})"
    fields = [
        ("Instance", facts["instance"]), ("Access key", facts["access_key"]),
        ("Used from", remote), ("Calls", str(facts["count"])),
        ("First seen", facts["first_seen"]), ("Last seen", facts["last_seen"]),
    ]
    text = headline(finding, event, previous)
    return {
        "text": f"{text}: {finding['title']}",  # the notification's text and the fallback
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": finding["title"][:3000]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                                           for name, value in fields]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                f"finding `{finding['id']}` · rule `{facts['rule']}` · {finding['region']}"}]},
        ],
    }


# -- what was sent --------------------------------------------------------------------------------

@dataclass
class SentState:
    """The severity last sent per finding id, so count updates and redeliveries send nothing.
    Kept in a small JSON file when a path is given (one entry per finding, a few dozen bytes)."""

    path: Path | None = None
    severities: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | None) -> SentState:
        if path is None:
            return cls()
        file = Path(path)
        if not file.exists():
            return cls(file)
        try:
            data = json.loads(file.read_text("utf-8"))
            return cls(file, {str(k): int(v) for k, v in data["sent"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"--state {path}: not a webhook state file ({exc}); move it away "
                            "to start afresh (findings already sent are then sent again)"
                            ) from None

    def event_for(self, finding: dict[str, Any]) -> tuple[str, int | None] | None:
        previous = self.severities.get(finding["id"])
        if previous is None:
            return "new", None
        if previous != finding["severity"]:
            return "severity_changed", previous
        return None

    def record(self, finding: dict[str, Any]) -> None:
        self.severities[finding["id"]] = finding["severity"]
        if self.path is None:
            return
        # Atomic: a crash mid-write leaves the previous state, never half a file.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False,
                                         suffix=".tmp", encoding="utf-8") as out:
            json.dump({"sent": self.severities}, out)
        os.replace(out.name, self.path)


# -- delivery -------------------------------------------------------------------------------------

Post = Callable[[str, bytes], int]  # (url, body) → HTTP status; raises OSError when unreachable


def http_post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class WebhookNotifier:
    """Sends a finding when it is new or its severity changed; ``notify`` returns what it did
    ("new", "severity_changed", None) and raises DeliveryFailed when the endpoint would not take
    it, so the caller does not commit its offset. A ``consumer.Notifier``."""

    name = "webhook"

    def __init__(self, url: str, state: SentState | None = None, style: str = "auto",
                 per_minute: float = DEFAULT_PER_MINUTE, attempts: int = DEFAULT_ATTEMPTS,
                 post: Post = http_post, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], float] = random.random) -> None:
        if style not in ("auto", "slack", "json"):
            raise ValueError(f"unknown message style {style!r}")
        self._url = url
        self.where = shown(url)
        self.state = state or SentState()
        self.slack = style == "slack" or (style == "auto" and is_slack(url))
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.attempts = max(1, attempts)
        self._post, self._sleep, self._clock, self._jitter = post, sleep, clock, jitter
        self._last_post: float | None = None
        self.sent = self.retries = 0

    def __repr__(self) -> str:  # never the URL, not even in a debugger or a traceback
        return f"WebhookNotifier({self.where}, slack={self.slack})"

    def deliver(self, findings: list[dict[str, Any]]) -> None:
        for finding in findings:
            self.notify(finding)

    def close(self) -> str:
        return f"{self.sent} messages sent to {self.where}, {self.retries} retries"

    def notify(self, finding: dict[str, Any]) -> str | None:
        if finding["service"].get("archived"):
            return None  # suppressed by a rule: on the topic for the record, not for a pager
        event = self.state.event_for(finding)
        if event is None:
            return None
        kind, previous = event
        message = (slack_message if self.slack else json_message)(finding, kind, previous)
        self._deliver(json.dumps(message, separators=(",", ":")).encode(), finding["id"])
        self.state.record(finding)
        self.sent += 1
        return kind

    def _throttle(self) -> None:
        if self._last_post is not None and self.interval:
            wait = self._last_post + self.interval - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_post = self._clock()

    def _deliver(self, body: bytes, finding_id: str) -> None:
        delay = BACKOFF_FIRST_SECONDS
        problem = ""
        for attempt in range(1, self.attempts + 1):
            self._throttle()
            try:
                status = self._post(self._url, body)
            except OSError as exc:
                status, problem = None, f"unreachable ({getattr(exc, 'reason', None) or exc})"
            if status is not None:
                if 200 <= status < 300:
                    return
                problem = f"answered HTTP {status}"
                if 400 <= status < 500 and status not in (408, 429):
                    # The URL is wrong or revoked, or the message refused: retrying cannot help.
                    raise DeliveryFailed(f"webhook {self.where} {problem} for finding "
                                         f"{finding_id}; check the URL (a revoked Slack webhook "
                                         "answers 404 or 410)", exit_code=1)
            if attempt == self.attempts:
                break
            self.retries += 1
            log.warning("webhook %s %s for finding %s; retry %d of %d in %.1f s", self.where,
                        problem, finding_id, attempt, self.attempts - 1, delay)
            self._sleep(delay * (0.5 + self._jitter() / 2))  # jitter: no retry storms
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
        raise DeliveryFailed(f"webhook {self.where} {problem} for finding {finding_id} after "
                             f"{self.attempts} attempts; nothing committed, so a restart "
                             "sends it again", exit_code=1)
