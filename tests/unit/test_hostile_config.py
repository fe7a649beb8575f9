"""Configs that would blind the detector or crash it (issue 11): each is one line naming the key."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streams.config import loader
from streams.config.loader import load_config
from streams.core import findings
from streams.core.settings import ConfigError, parse_config
from streams.errors import UserError
from streams.kafka.settings import KafkaSettings, load_kafka_settings

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
RECORDS = Path(__file__).resolve().parents[1] / "scenarios" / "many-calls-one-attacker" / \
    "records.jsonl"


def detect_with(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXFILGUARD, "detect", "--config", str(config), str(RECORDS)],
                          capture_output=True, text=True, timeout=120, check=False)


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("rule", [
    {"name": "x", "finding_type": None},
    {"name": "x", "finding_type": ""},
    {"name": "x", "role": None},
    {"name": "x", "remote_cidr": None},
    {"name": "x", "instance": ""},
])
def test_an_empty_criterion_does_not_archive_everything(rule):
    key = next(k for k in rule if k != "name")
    with pytest.raises(ConfigError, match=rf"suppression_rules\[0\]\.{key} \(x\): empty"):
        parse_config({"suppression_rules": [rule]})


def test_a_null_criterion_in_a_file_is_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("suppression_rules:\n  - name: x\n    finding_type:\n")
    assert "finding_type" in one_line(detect_with(config))


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0", "10.0.0.0/7", "2600::/16"])
def test_a_too_broad_trusted_network_is_refused_unless_allowed(cidr):
    with pytest.raises(ConfigError, match=r"trusted_ip_cidrs\[0\].*allow_broad_trusted_cidrs"):
        parse_config({"trusted_ip_cidrs": [cidr]})
    allowed = parse_config({"trusted_ip_cidrs": [cidr], "allow_broad_trusted_cidrs": True})
    assert allowed.trusted_ip_cidrs == (str(ipaddress.ip_network(cidr)),)


def test_an_ordinary_trusted_network_is_accepted():
    assert parse_config({"trusted_ip_cidrs": ["10.0.0.0/8", "2600:1f18::/32"]}).trusted_ip_cidrs


@pytest.mark.parametrize("account", [True, "٤٤٤٤٥٥٥٥٦٦٦٦", "444455556666\n", 1, 12.5])
def test_an_account_id_is_twelve_ascii_digits(account):
    with pytest.raises(ConfigError, match=r"associated_accounts\[0\]"):
        parse_config({"associated_accounts": [account]})


@pytest.mark.parametrize(("key", "value"), [
    ("partitions", 1.5), ("partitions", True), ("web_port", 99999), ("web_port", "6066"),
    ("bootstrap_servers", ["a:9092", "b:9092"]), ("sasl_password", 12345678),
    ("app_id", ""), ("topic_input", 5), ("topic_findings", None), ("security_protocol", 123),
    ("sasl_mechanism", 5), ("sasl_mechanism", ["PLAIN"]), ("ssl_cafile", 5),
])
def test_kafka_keys_take_their_own_type_only(key, value):
    with pytest.raises(UserError, match=f"kafka.{key}") as caught:
        load_kafka_settings({key: value}, environ={})
    assert "12345678" not in str(caught.value)


def test_kafka_numbers_from_the_environment_are_still_read():
    settings = load_kafka_settings({}, environ={"EXFILGUARD_PARTITIONS": "8"})
    assert settings.partitions == 8
    with pytest.raises(UserError, match="kafka.partitions"):
        load_kafka_settings({}, environ={"EXFILGUARD_PARTITIONS": "1.5"})


def test_a_wrong_kafka_type_in_a_file_is_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("kafka:\n  security_protocol: 123\n")
    assert "kafka.security_protocol" in one_line(detect_with(config))


@pytest.mark.parametrize("text", [
    "trusted_ip_cidrs: ['198.51.100.0/24']\ntrusted_ip_cidrs: []\n",
    "kafka:\n  topic_input: a\n  topic_input: b\n",
])
def test_a_key_given_twice_is_an_error(tmp_path, text):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    line = one_line(detect_with(config))
    assert "given twice" in line


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_bytes(b"trusted_ip_cidrs: ['\xff\xfe']\n")
    assert "not UTF-8" in one_line(detect_with(config))


@pytest.mark.parametrize("body", [
    b"\xff\xfe{}",
    json.dumps({"prefixes": [{"ip_prefix": ["3.0.0.0/8"], "region": "x", "service": "EC2"}]}
               ).encode(),
    json.dumps({"prefixes": [{"ip_prefix": {"a": 1}, "region": "x", "service": "EC2"}]}
               ).encode(),
])
def test_a_broken_ip_ranges_file_is_one_line(tmp_path, body):
    ranges = tmp_path / "ip-ranges.json"
    ranges.write_bytes(body)
    config = tmp_path / "config.yaml"
    config.write_text(f"aws_ip_ranges: {ranges}\n")
    assert "aws_ip_ranges" in one_line(detect_with(config))


def test_the_yaml_c_loader_is_used_when_present():
    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("this PyYAML has no libyaml")
    assert issubclass(loader._StrictLoader, yaml.CSafeLoader)


def test_suppression_rule_networks_are_parsed_once(monkeypatch):
    config = parse_config({"suppression_rules": [
        {"name": f"r{n}", "remote_cidr": f"10.{n}.0.0/16"} for n in range(3)]})

    def no_parsing(*args, **kwargs):
        raise AssertionError("a CIDR parsed while judging")

    monkeypatch.setattr(ipaddress, "ip_network", no_parsing)
    aggregate = {"type": "x", "remote_account": None, "remote_ip": "10.2.3.4", "role": "r",
                 "instance": "i-1"}
    assert findings.suppressed_by(aggregate, config.suppression_rules) == "r2"


def test_the_sasl_password_is_never_printed(tmp_path):
    settings = KafkaSettings(sasl_password="hunter2-secret", schema_registry_password="s3cr3t")
    assert "hunter2-secret" not in repr(settings) and "s3cr3t" not in repr(settings)
    config = tmp_path / "config.yaml"
    config.write_text("kafka:\n  security_protocol: SASL_SSL\n  sasl_password: hunter2-secret\n")
    with pytest.raises(UserError) as caught:
        load_config(str(config), environ={})
    assert "hunter2-secret" not in str(caught.value)
    assert "hunter2-secret" not in repr(load_config(None, environ={
        "EXFILGUARD_SASL_PASSWORD": "hunter2-secret"}))


@pytest.mark.parametrize("given", ["1234567890123", "٤٤٤٤٥٥٥٥٦٦٦٦"])
def test_inventory_accounts_are_twelve_ascii_digits_too(given):
    import argparse

    from streams.cli.inventory import explicit_accounts

    with pytest.raises(UserError, match="--accounts"):
        explicit_accounts(argparse.Namespace(accounts=given))
