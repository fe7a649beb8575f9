"""Labelled scenarios: each folder holds records, an optional config and the findings a person
expects (written from the rules, not from running the detector), compared exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from streams.aws.ipranges import load_aws_ranges
from streams.core.settings import parse_config
from streams.offline.run import detect
from streams.sources.files import iter_items

HERE = Path(__file__).parent
SCENARIOS = sorted(p for p in HERE.iterdir() if (p / "expected.jsonl").exists())


def project(finding: dict) -> dict:
    """The part of a finding a scenario pins down."""
    action = finding["service"]["action"]["awsApiCallAction"]
    remote_account = action["remoteAccountDetails"]
    ip = action["remoteIpDetails"]
    return {
        "type": finding["type"].rsplit(".", 1)[-1],
        "severity": finding["severity"],
        "accessKeyId": finding["resource"]["accessKeyDetails"]["accessKeyId"],
        "instanceId": finding["resource"]["instanceDetails"]["instanceId"],
        "remoteAccount": remote_account["accountId"] if remote_account else None,
        "affiliated": remote_account["affiliated"] if remote_account else None,
        "remoteIp": ip["ipAddressV4"] or ip["ipAddressV6"],
        "count": finding["service"]["count"],
        "archived": finding["service"]["archived"],
    }


def load_expected(folder: Path) -> list[dict]:
    lines = (folder / "expected.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def run_scenario(folder: Path) -> list[dict]:
    config_path = folder / "config.yaml"
    raw = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    config = parse_config(raw or {})
    findings, _, _ = detect(iter_items([str(folder / "records.jsonl")]), config,
                            load_aws_ranges(config))
    return findings


def test_there_are_scenarios():
    assert len(SCENARIOS) >= 10


@pytest.mark.parametrize("folder", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario(folder: Path):
    got = sorted((project(f) for f in run_scenario(folder)), key=json.dumps)
    want = sorted(load_expected(folder), key=json.dumps)
    assert got == want
