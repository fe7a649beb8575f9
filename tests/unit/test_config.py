"""Config errors name the key; good configs build the lookups."""

from __future__ import annotations

import pytest

from streams.config.loader import load_config
from streams.core.settings import ConfigError, parse_config
from streams.errors import UserError


def test_empty_config_is_valid():
    config = parse_config({})
    assert config.finding_update_interval_seconds == 900
    assert not config.associated_accounts


def test_full_config():
    config = parse_config({
        "associated_accounts": ["444455556666"],
        "trusted_ip_cidrs": ["198.51.100.0/24"],
        "account_networks": {"111122223333": ["3.85.10.20/32", "10.0.0.0/16"]},
        "finding_update_interval_seconds": 0,
        "suppression_rules": [{"name": "lab", "remote_account": "777788889999"}],
    })
    assert config.is_associated("444455556666")
    assert config.trusted.lookup("198.51.100.7")
    assert config.declared.lookup("10.0.3.4") == "111122223333"


@pytest.mark.parametrize("raw, key", [
    ({"asociated_accounts": []}, "asociated_accounts"),
    ({"associated_accounts": ["4444"]}, "associated_accounts[0]"),
    ({"trusted_ip_cidrs": ["198.51.100.0/33"]}, "trusted_ip_cidrs[0]"),
    ({"account_networks": {"111122223333": ["nope"]}}, "account_networks.111122223333[0]"),
    ({"account_networks": {"abc": []}}, "account_networks"),
    ({"finding_update_interval_seconds": -1}, "finding_update_interval_seconds"),
    ({"suppression_rules": [{"name": "x"}]}, "at least one criterion"),
    ({"suppression_rules": [{"name": "x", "finding_typ": "a"}]}, "finding_typ"),
])
def test_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw)


def test_config_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("associated_accounts: [\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(str(bad), environ={})
    with pytest.raises(UserError, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"), environ={})


def test_environment_overrides_the_kafka_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  bootstrap_servers: a:9092\n  partitions: 3\n")
    loaded = load_config(str(path), environ={"EXFILGUARD_BOOTSTRAP_SERVERS": "b:9092"})
    assert loaded.kafka.bootstrap_servers == "b:9092"
    assert loaded.kafka.partitions == 3


def test_sasl_needs_a_mechanism():
    with pytest.raises(UserError, match="sasl_mechanism"):
        load_config(None, environ={"EXFILGUARD_SECURITY_PROTOCOL": "SASL_SSL"})
