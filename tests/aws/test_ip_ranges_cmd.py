"""``exfilguard ip-ranges update`` against a web server of our own on 127.0.0.1 (never AWS's):
a newer document replaces the file atomically; anything else leaves it as it was, in one line."""

from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import stat
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from moto_world import EXFILGUARD, free_port

from streams.aws.ipranges import snapshot_path
from streams.cli import ip_ranges
from streams.cli.main import main

SNAPSHOT = json.loads(snapshot_path().read_text("utf-8"))
NEWER_DATE, NEWER_TOKEN = "2099-01-02-03-04-05", "4070919845"


def variant(**changes) -> bytes:
    document = {**SNAPSHOT, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not None}, indent=1).encode()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """URL of a directory of documents served on loopback, one name per case."""
    root = tmp_path_factory.mktemp("site")
    files = {
        "newer.json": variant(createDate=NEWER_DATE, syncToken=NEWER_TOKEN,
                              prefixes=SNAPSHOT["prefixes"][1:]),
        "older.json": variant(createDate="2020-01-01-00-00-00", syncToken="1577836800"),
        "same.json": snapshot_path().read_bytes(),
        "html.json": b"<html><body>Captive portal</body></html>",
        "shape.json": b'{"prefixes": {"ip_prefix": "1.2.3.0/24"}}',
        "nodate.json": variant(createDate=None),
        "badprefix.json": variant(prefixes=[{"ip_prefix": "1.2.3.0/33", "region": "x",
                                             "service": "AMAZON"}]),
    }
    for name, body in files.items():
        (root / name).write_bytes(body)
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()
    server.server_close()


@pytest.fixture
def current(tmp_path) -> Path:
    """A copy of the shipped snapshot, read-only like it, to be replaced."""
    path = tmp_path / "ip-ranges.json"
    path.write_bytes(snapshot_path().read_bytes())
    path.chmod(0o444)
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXFILGUARD, "ip-ranges", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_newer_document_replaces_the_file(site, current):
    url, files = site
    result = run("update", "--url", f"{url}/newer.json", "--output", str(current))
    assert result.returncode == 0, result.stderr
    old, new = result.stdout.splitlines()
    assert old.startswith(f"old: createDate {SNAPSHOT['createDate']}, syncToken "
                          f"{SNAPSHOT['syncToken']}: {len(SNAPSHOT['prefixes'])} IPv4 and "
                          f"{len(SNAPSHOT['ipv6_prefixes'])} IPv6 prefixes")
    assert new.startswith(f"new: createDate {NEWER_DATE}, syncToken {NEWER_TOKEN}: "
                          f"{len(SNAPSHOT['prefixes']) - 1} IPv4")
    assert current.read_bytes() == files["newer.json"]  # byte for byte as served
    assert stat.S_IMODE(current.stat().st_mode) == 0o444  # the old file's mode kept
    assert [p.name for p in current.parent.iterdir()] == [current.name]  # no temporary left
    assert result.stderr == f"exfilguard ip-ranges: wrote {current}\n"


def test_the_same_document_is_left_alone(site, current):
    before = current.stat().st_mtime_ns
    result = run("update", "--url", f"{site[0]}/same.json", "--output", str(current))
    assert result.returncode == 0, result.stderr
    assert "already current" in result.stderr
    assert current.stat().st_mtime_ns == before


def test_an_older_document_needs_force(site, current):
    url, files = site
    result = run("update", "--url", f"{url}/older.json", "--output", str(current))
    assert "is older than" in one_line_error(result) and "--force" in result.stderr
    assert current.read_bytes() == snapshot_path().read_bytes()
    result = run("update", "--url", f"{url}/older.json", "--output", str(current), "--force")
    assert result.returncode == 0, result.stderr
    assert current.read_bytes() == files["older.json"]


@pytest.mark.parametrize(("name", "expected"), [
    ("html.json", "not JSON"),
    ("shape.json", "'ip_prefix' entries are not a list"),
    ("nodate.json", "createDate None is not YYYY-MM-DD-hh-mm-ss"),
    ("badprefix.json", "bad prefix"),
    ("missing.json", "HTTP 404"),
])
def test_what_is_not_ip_ranges_json_is_refused_in_one_line(site, current, name, expected):
    result = run("update", "--url", f"{site[0]}/{name}", "--output", str(current))
    line = one_line_error(result)
    assert line.startswith(f"exfilguard ip-ranges: error: {site[0]}/{name}: ")
    assert expected in line
    assert current.read_bytes() == snapshot_path().read_bytes()


def test_an_unreachable_server_is_one_line(current):
    url = f"http://127.0.0.1:{free_port()}/ip-ranges.json"
    line = one_line_error(run("update", "--url", url, "--output", str(current)))
    assert line.startswith(f"exfilguard ip-ranges: error: {url}: cannot fetch it (")


def test_only_a_url_is_fetched(current):
    line = one_line_error(run("update", "--url", "ip-ranges.json", "--output", str(current)))
    assert line.endswith("ip-ranges.json: expected an https://, http:// or file:// URL")


def test_a_silent_server_times_out_in_one_line(current):
    with socket.socket() as listener:  # accepts connections (the backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/ip-ranges.json"
        result = run("update", "--url", url, "--output", str(current), "--timeout", "0.5")
    line = one_line_error(result)
    assert url in line and ("0.5s" in line or "timed out" in line)


def test_a_new_output_file_is_created(site, tmp_path):
    path = tmp_path / "fresh.json"
    result = run("update", "--url", f"{site[0]}/newer.json", "--output", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"old: none usable at {path}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_without_output_it_replaces_the_package_snapshot(site, current, monkeypatch, capsys):
    monkeypatch.setattr(ip_ranges, "snapshot_path", lambda: current)
    assert main(["ip-ranges", "update", "--url", f"{site[0]}/newer.json"]) == 0
    assert current.read_bytes() == site[1]["newer.json"]
    monkeypatch.setattr(ip_ranges, "snapshot_path", lambda: current.parent / "gone" / "x.json")
    assert main(["ip-ranges", "update", "--url", f"{site[0]}/newer.json"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "give --output FILE and point aws_ip_ranges at it")


def test_show_describes_the_snapshot_a_file_or_the_configs(site, current, tmp_path):
    result = run("show")
    assert result.returncode == 0, result.stderr
    line, age = result.stdout.rsplit(", ", 1)
    created = datetime.strptime(SNAPSHOT["createDate"], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
    days = (datetime.now(UTC) - created).total_seconds() / 86400
    # The age is now minus createDate, in days (to the day: the test may cross a boundary).
    assert age.endswith(" days old\n") and abs(int(age.split()[0]) - days) <= 1, age
    assert line + "\n" == (
        f"{snapshot_path()} (the shipped snapshot): createDate {SNAPSHOT['createDate']}, "
        f"syncToken {SNAPSHOT['syncToken']}: {len(SNAPSHOT['prefixes'])} IPv4 and "
        f"{len(SNAPSHOT['ipv6_prefixes'])} IPv6 prefixes, "
        f"{len({p['region'] for p in SNAPSHOT['prefixes'] + SNAPSHOT['ipv6_prefixes']})} "
        f"regions, "
        f"{len({p['service'] for p in SNAPSHOT['prefixes'] + SNAPSHOT['ipv6_prefixes']})} "
        "services\n")
    newer = tmp_path / "newer.json"
    newer.write_bytes(site[1]["newer.json"])
    assert NEWER_DATE in run("show", str(newer)).stdout
    config = tmp_path / "config.yaml"
    config.write_text(f"aws_ip_ranges: {newer}\n")
    assert run("show", "--config", str(config)).stdout.startswith(
        f"{newer} (the config's aws_ip_ranges): createDate {NEWER_DATE}")
    assert "not JSON" in one_line_error(run("show", str(config)))
