"""`exfilguard notify webhook` against a real HTTP server on loopback that fails first: new
findings and severity changes are posted once each, count updates never, the URL never shown."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streams.errors import UserError
from streams.notify.webhook import (
    DeliveryFailed,
    SentState,
    WebhookNotifier,
    http_post,
    is_slack,
    read_url,
)

ROOT = Path(__file__).resolve().parents[2]
EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
SECRET_PATH = "/services/T000/B000/XXXXsecretXXXX"


class Endpoint:
    """An HTTP server that answers `failures` (a list of statuses) first, then 200."""

    def __init__(self, failures: list[int] | None = None) -> None:
        self.failures = list(failures or [])
        self.bodies: list[dict] = []
        self.attempts = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.attempts += 1
                status = endpoint.failures.pop(0) if endpoint.failures else 200
                if status == 200:
                    assert self.path == SECRET_PATH
                    endpoint.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    made = []

    def make(failures=None):
        made.append(Endpoint(failures))
        return made[-1]

    yield make
    for e in made:
        e.close()


@pytest.fixture(scope="module")
def finding() -> dict:
    out = subprocess.run([EXFILGUARD, "detect", str(ROOT / "tests/fixtures/invictus/CloudTrail")],
                         capture_output=True, check=True).stdout
    return json.loads(out.splitlines()[0])


def updated(finding: dict, count: int | None = None, severity: int | None = None) -> dict:
    changed = copy.deepcopy(finding)
    if count is not None:
        changed["service"]["count"] = count
    if severity is not None:
        changed["severity"] = severity
    return changed


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_new_and_severity_changes_only_with_retries(endpoint, finding, caplog):
    server = endpoint(failures=[503, 500])  # the first two attempts fail
    sleeps = Sleeps()
    notifier = WebhookNotifier(server.url, style="json", post=http_post, sleep=sleeps,
                               per_minute=0, jitter=lambda: 1.0)
    with caplog.at_level(logging.DEBUG):
        assert notifier.notify(finding) == "new"
        assert notifier.notify(updated(finding, count=3)) is None        # a count update
        assert notifier.notify(finding) is None                          # a redelivery
        assert notifier.notify(updated(finding, count=4, severity=5)) == "severity_changed"
    assert server.attempts == 4 and len(server.bodies) == 2
    assert sleeps == [1.0, 2.0]  # exponential backoff between the failed attempts
    first, change = server.bodies
    assert first["event"] == "new" and first["finding_id"] == finding["id"]
    assert first["instance"] == "i-0dbc91f429e48eeed"
    assert first["access_key"] == "ASIATFQR7NSC36DZQP7P"
    assert first["remote_ip"] == "192.168.10.20" and first["count"] == 2
    assert first["finding"] == finding
    assert change["event"] == "severity_changed"
    assert (change["severity"], change["previous_severity"]) == (5, 8)
    assert change["summary"].startswith("MEDIUM (was HIGH)")
    assert "503" in caplog.text  # the retries are logged ...
    assert SECRET_PATH not in caplog.text and "secret" not in caplog.text  # ... not the URL


def test_slack_block_kit_shape(endpoint, finding):
    server = endpoint()
    WebhookNotifier(server.url, style="slack", per_minute=0).notify(finding)
    message = server.bodies[0]
    assert message["text"].startswith("HIGH InstanceCredentialExfiltration.OutsideAWS")
    header, title, facts, context = message["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in facts["fields"]}
    assert fields["*Instance*"] == "i-0dbc91f429e48eeed"
    assert fields["*Used from*"] == "192.168.10.20" and fields["*Calls*"] == "2"
    assert finding["id"] in context["elements"][0]["text"]
    assert is_slack("https://hooks.slack.com/services/T/B/x")
    assert not is_slack("https://hooks.slack.com.evil.example/services/x")


def test_gives_up_without_recording_so_a_restart_resends(endpoint, finding, tmp_path):
    server = endpoint(failures=[503] * 3)
    state = SentState.load(str(tmp_path / "sent.json"))
    notifier = WebhookNotifier(server.url, state, attempts=3, sleep=Sleeps(), per_minute=0)
    with pytest.raises(DeliveryFailed) as failed:
        notifier.notify(finding)
    assert "after 3 attempts" in str(failed.value) and SECRET_PATH not in str(failed.value)
    assert not (tmp_path / "sent.json").exists()
    # The next run (same state file) sends it, once.
    again = WebhookNotifier(server.url, SentState.load(str(tmp_path / "sent.json")),
                            sleep=Sleeps(), per_minute=0)
    assert again.notify(finding) == "new"
    third = WebhookNotifier(server.url, SentState.load(str(tmp_path / "sent.json")),
                            sleep=Sleeps(), per_minute=0)
    assert third.notify(finding) is None
    assert len(server.bodies) == 1


def test_a_revoked_url_is_not_retried(endpoint, finding):
    server = endpoint(failures=[404])
    with pytest.raises(DeliveryFailed, match="answered HTTP 404"):
        WebhookNotifier(server.url, sleep=Sleeps(), per_minute=0).notify(finding)
    assert server.attempts == 1


def test_unreachable_endpoint_names_only_the_host(finding):
    notifier = WebhookNotifier("http://127.0.0.1:9" + SECRET_PATH, attempts=2, sleep=Sleeps())
    with pytest.raises(DeliveryFailed) as failed:
        notifier.notify(finding)
    assert "http://127.0.0.1" in str(failed.value) and SECRET_PATH not in str(failed.value)
    assert SECRET_PATH not in repr(notifier)


def test_rate_is_bounded(endpoint, finding):
    server = endpoint()
    now = [100.0]
    sleeps = Sleeps()

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    notifier = WebhookNotifier(server.url, per_minute=6, sleep=sleep, clock=lambda: now[0])
    for n in range(3):
        notifier.notify({**finding, "id": f"{n:032x}"})
    assert len(server.bodies) == 3
    assert sleeps == [10.0, 10.0]  # six a minute: ten seconds between posts


def test_archived_findings_are_not_sent(endpoint, finding):
    server = endpoint()
    archived = copy.deepcopy(finding)
    archived["service"]["archived"] = True
    assert WebhookNotifier(server.url, per_minute=0).notify(archived) is None
    assert server.attempts == 0


def test_url_from_env_or_file_and_never_echoed(tmp_path):
    (tmp_path / "url").write_text("https://hooks.slack.com" + SECRET_PATH + "\n")
    assert read_url(url_file=str(tmp_path / "url")).endswith(SECRET_PATH)
    assert read_url(url_env="HOOK", environ={"HOOK": "http://h.example/x"}) == "http://h.example/x"
    with pytest.raises(UserError, match="HOOK: the variable is not set"):
        read_url(url_env="HOOK", environ={})
    with pytest.raises(UserError) as bad:
        read_url(url_env="HOOK", environ={"HOOK": "hooks.slack.com" + SECRET_PATH})
    assert "not an http(s) URL" in str(bad.value) and SECRET_PATH not in str(bad.value)


def test_the_command_over_a_file_sends_each_finding_once(endpoint, finding, tmp_path):
    server = endpoint(failures=[502])
    (tmp_path / "url").write_text(server.url)

    def run(*findings):
        path = tmp_path / "findings.jsonl"
        path.write_text("".join(json.dumps(f) + "\n" for f in findings))
        return subprocess.run([EXFILGUARD, "notify", "webhook", "--url-file",
                               str(tmp_path / "url"), "--from-file", str(path), "--state",
                               str(tmp_path / "sent.json"), "--max-per-minute", "600"],
                              capture_output=True)

    first = run(finding, updated(finding, count=5))
    assert first.returncode == 0, first.stderr.decode()
    # One batch holds each id once, its latest version: one message, with the latest count.
    assert [(b["event"], b["count"]) for b in server.bodies] == [("new", 5)]
    assert b"1 messages sent to http://127.0.0.1, 1 retries" in first.stderr
    assert SECRET_PATH.encode() not in first.stderr + first.stdout
    again = run(updated(finding, count=6), updated(finding, count=7, severity=5))
    assert again.returncode == 0, again.stderr.decode()
    assert [b["event"] for b in server.bodies] == ["new", "severity_changed"]
    assert json.loads((tmp_path / "sent.json").read_text()) == {"sent": {finding["id"]: 5}}
