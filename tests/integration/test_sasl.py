"""Production clusters authenticate: the same SASL settings reach Faust (the worker) and every
confluent-kafka client (forward, findings), and a wrong password is one clear line."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import EXFILGUARD, Deployment
from kafka_broker import ROOT, free_port
from test_pipeline import read_findings

INVICTUS = ROOT / "tests" / "fixtures" / "invictus" / "CloudTrail"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kafka-sasl")
    port = free_port()
    sasl_port = free_port()
    env = dict(os.environ, KAFKA_DIR=str(folder), KAFKA_PORT=str(port),
               KAFKA_SASL_PORT=str(sasl_port), KAFKA_SASL_USERS="exfilguard:s3cret-pass")
    script = str(ROOT / "tools" / "kafka" / "kafka.sh")
    started = subprocess.run([script, "up"], env=env, capture_output=True, text=True,
                             timeout=600, check=False)
    assert started.returncode == 0, started.stdout + started.stderr
    yield f"127.0.0.1:{sasl_port}"
    subprocess.run([script, "down"], env=env, capture_output=True, timeout=120, check=False)


def sasl_env(password: str) -> dict[str, str]:
    return {"EXFILGUARD_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "EXFILGUARD_SASL_MECHANISM": "PLAIN",
            "EXFILGUARD_SASL_USERNAME": "exfilguard", "EXFILGUARD_SASL_PASSWORD": password}


def test_worker_forwarder_and_consumer_authenticate(sasl_broker, tmp_path):
    d = Deployment(sasl_broker, tmp_path, partitions=2, **sasl_env("s3cret-pass"))
    try:
        config = tmp_path / "config.yaml"
        config.write_text("finding_update_interval_seconds: 0\n")
        d.start_worker(config=str(config))
        forwarded = d.exfilguard("forward", str(INVICTUS))
        assert forwarded.returncode == 0, forwarded.stderr.decode()
        findings = read_findings(d, 1)
        assert [f["resource"]["accessKeyDetails"]["accessKeyId"] for f in findings] == [
            "ASIATFQR7NSC36DZQP7P"]
    finally:
        d.close()


def test_a_wrong_password_is_one_line(sasl_broker, tmp_path):
    env = {**os.environ, "EXFILGUARD_BOOTSTRAP_SERVERS": sasl_broker, **sasl_env("wrong")}
    result = subprocess.run([EXFILGUARD, "topics", "create"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "refused the credentials" in lines[0] and "EXFILGUARD_SASL_PASSWORD" in lines[0]
