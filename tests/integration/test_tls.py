"""TLS end to end: a broker with a TLS listener and a mutual-TLS one, certificates from a CA made
here; worker (aiokafka), forward, findings, replay and topics (confluent-kafka) all connect
through ssl_cafile/ssl_certfile/ssl_keyfile, and a wrong CA or certificate is one line."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import EXFILGUARD, Deployment
from kafka_broker import ROOT, free_port
from test_pipeline import read_findings
from tls_certs import Authority

INVICTUS = ROOT / "tests" / "fixtures" / "invictus" / "CloudTrail"
DAY = ("--start", "2023-07-10T00:00:00Z", "--end", "2023-07-11T00:00:00Z")
STOLEN_KEY = "ASIATFQR7NSC36DZQP7P"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kafka-tls")
    ca = Authority(folder / "ca")
    ports = {"plain": free_port(), "tls": free_port(), "mtls": free_port()}
    env = dict(os.environ, KAFKA_DIR=str(folder / "kafka"), KAFKA_PORT=str(ports["plain"]),
               KAFKA_SSL_PORT=str(ports["tls"]), KAFKA_MTLS_PORT=str(ports["mtls"]),
               KAFKA_SSL_KEYSTORE=str(ca.keystore("broker")), KAFKA_SSL_TRUSTSTORE=str(ca.cafile))
    script = str(ROOT / "tools" / "kafka" / "kafka.sh")
    started = subprocess.run([script, "up"], env=env, capture_output=True, text=True,
                             timeout=600, check=False)
    assert started.returncode == 0, started.stdout + started.stderr
    yield ca, {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    subprocess.run([script, "down"], env=env, capture_output=True, timeout=120, check=False)


def tls_env(cafile, cert=None, key=None) -> dict[str, str]:
    env = {"EXFILGUARD_SECURITY_PROTOCOL": "SSL", "EXFILGUARD_SSL_CAFILE": str(cafile)}
    if cert:
        env |= {"EXFILGUARD_SSL_CERTFILE": str(cert), "EXFILGUARD_SSL_KEYFILE": str(key)}
    return env


@pytest.mark.parametrize("listener", ["tls", "mtls"], ids=["tls", "mutual-tls"])
def test_every_client_goes_through_tls(tls_broker, tmp_path, listener):
    ca, servers = tls_broker
    client = ca.issue(f"client-{listener}") if listener == "mtls" else (None, None)
    d = Deployment(servers[listener], tmp_path, partitions=2, **tls_env(ca.cafile, *client))
    try:
        created = d.exfilguard("topics", "create")
        assert created.returncode == 0, created.stderr.decode()
        assert "created" in created.stderr.decode() + created.stdout.decode()
        config = tmp_path / "config.yaml"
        config.write_text("finding_update_interval_seconds: 0\n")
        d.start_worker(config=str(config))
        forwarded = d.exfilguard("forward", str(INVICTUS))
        assert forwarded.returncode == 0, forwarded.stderr.decode()
        findings = read_findings(d, 1)
        assert [f["resource"]["accessKeyDetails"]["accessKeyId"] for f in findings] == [STOLEN_KEY]
        replayed = d.exfilguard("replay", "--config", str(config),
                                "--topic", d.env["EXFILGUARD_TOPIC_INPUT"], *DAY, "--output", "-")
        assert replayed.returncode == 0, replayed.stderr.decode()
        assert [json.loads(line)["id"] for line in replayed.stdout.splitlines()] == [
            findings[0]["id"]]
    finally:
        d.close()


def run_one_line(command: list[str], server: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [EXFILGUARD, *command], capture_output=True, text=True, timeout=90, check=False,
        env={**os.environ, "EXFILGUARD_BOOTSTRAP_SERVERS": server, **env,
             "EXFILGUARD_WEB_PORT": str(free_port())})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["topics", "create"], ["worker"],
                                     ["findings", "--timeout", "2"]])
def test_a_wrong_ca_is_one_line_naming_the_setting(tls_broker, tmp_path, command):
    _, servers = tls_broker
    other = Authority(tmp_path / "other", name="someone-elses-ca")
    line = run_one_line(command, servers["tls"], tls_env(other.cafile))
    assert "not signed by the CA in kafka.ssl_cafile" in line and "EXFILGUARD_SSL_CAFILE" in line


def test_an_expired_client_certificate_is_one_line_naming_the_setting(tls_broker):
    ca, servers = tls_broker
    line = run_one_line(["topics", "create"], servers["mtls"],
                        tls_env(ca.cafile, *ca.issue("expired", expired=True)))
    assert "EXFILGUARD_SSL_CERTFILE" in line and "expired on" in line


def test_a_client_certificate_missing_or_from_another_ca_is_one_line(tls_broker, tmp_path):
    ca, servers = tls_broker
    missing = run_one_line(["forward", str(INVICTUS)], servers["mtls"], tls_env(ca.cafile))
    assert "requires a client certificate" in missing and "EXFILGUARD_SSL_CERTFILE" in missing
    foreign = Authority(tmp_path / "other", name="someone-elses-ca").issue("intruder")
    refused = run_one_line(["topics", "create"], servers["mtls"], tls_env(ca.cafile, *foreign))
    assert "refused the client certificate" in refused and "EXFILGUARD_SSL_CERTFILE" in refused
    cert, _ = ca.issue("mine")
    _, wrong_key = ca.issue("theirs")
    mismatch = run_one_line(["topics", "create"], servers["mtls"],
                            tls_env(ca.cafile, cert, wrong_key))
    assert "EXFILGUARD_SSL_KEYFILE" in mismatch and "does not belong" in mismatch
