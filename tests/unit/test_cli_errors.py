"""Commands a user runs wrong, or against a broker that is not there: one line, non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEAD = {"EXFILGUARD_BOOTSTRAP_SERVERS": "127.0.0.1:1"}


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([EXFILGUARD, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, check=False)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [
    ["forward", str(FIXTURES / "invictus" / "CloudTrail")],
    ["findings", "--timeout", "1"],
    ["worker"],
    ["topics", "create"],
])
def test_unreachable_broker_is_one_line_naming_the_fix(command):
    result = run(*command, env=DEAD)
    assert result.returncode == 3
    line = one_line_error(result)
    assert "cannot reach Kafka at 127.0.0.1:1" in line and "make kafka-up" in line


def test_detect_on_a_missing_path(tmp_path):
    result = run("detect", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "no such file or directory" in one_line_error(result)


def test_detect_with_a_bad_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("trusted_ip_cidrs: ['10.0.0.0/40']\n")
    result = run("detect", "--config", str(config), str(FIXTURES / "invictus" / "CloudTrail"))
    assert result.returncode == 2
    assert "trusted_ip_cidrs[0]" in one_line_error(result)


def test_detect_counts_bad_lines_and_still_exits_zero(tmp_path):
    records = tmp_path / "mixed.jsonl"
    # The truncated line is an issuance, so it may matter and is decoded: a bad record.
    # (A truncated line that cannot matter is skipped undecoded, as in the stream.)
    # Beside a CloudTrail record: a file of nothing but bad lines is no CloudTrail at all.
    records.write_text('not json\n{"eventName": "AssumeRole", "userIdentity"\n[1]\n'
                       '{"eventName": "ListBuckets", "eventTime": "2024-01-01T00:00:00Z"}\n')
    result = run("detect", str(records))
    assert result.returncode == 0
    assert "4 records" in result.stderr and "3 bad" in result.stderr


def test_detect_is_byte_identical_run_to_run(tmp_path):
    first = run("detect", str(FIXTURES / "invictus" / "CloudTrail"))
    second = run("detect", "--output", str(tmp_path / "out.jsonl"),
                 str(FIXTURES / "invictus" / "CloudTrail"))
    assert first.returncode == second.returncode == 0
    assert first.stdout.encode() == (tmp_path / "out.jsonl").read_bytes()
    assert first.stdout.count("\n") == 1


def test_bad_environment_setting_is_named():
    result = run("topics", "create", env={"EXFILGUARD_PARTITIONS": "many"})
    assert result.returncode == 2
    assert "EXFILGUARD_PARTITIONS" in one_line_error(result)


def test_detect_on_a_path_with_no_cloudtrail_says_so(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("detect", str(empty))
    assert result.returncode == 2
    assert "no CloudTrail records" in one_line_error(result)
    readme = Path(__file__).resolve().parents[2] / "README.md"
    result = run("detect", str(readme))
    assert result.returncode == 2
    line = one_line_error(result)
    assert "no CloudTrail records" in line and "README.md" in line


def test_a_worker_on_a_port_in_use_is_one_line_naming_it():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("worker", env={"EXFILGUARD_WEB_PORT": str(port), **DEAD})
    assert result.returncode == 2
    assert f"web port {port} on 127.0.0.1 is taken" in one_line_error(result)


def test_a_kafka_key_typo_names_the_file(tmp_path):
    config = tmp_path / "exfilguard.yaml"
    config.write_text("kafka:\n  bootstrap_server: 127.0.0.1:9092\n")
    result = run("detect", "--config", str(config), str(FIXTURES / "invictus" / "CloudTrail"))
    assert result.returncode == 2
    line = one_line_error(result)
    assert str(config) in line and "kafka.bootstrap_server" in line


def test_a_remote_broker_that_is_not_there_hints_at_dns_and_tls():
    result = run("topics", "create", env={"EXFILGUARD_BOOTSTRAP_SERVERS": "kafka.invalid:9092"})
    assert result.returncode == 3
    line = one_line_error(result)
    assert "make kafka-up" not in line and "DNS" in line and "TLS" in line
