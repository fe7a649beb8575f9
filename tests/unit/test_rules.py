"""Rules are units: each names scenario folders that exist, and in each of them it is the rule
that decides at least one call (or, for the record rule, the scenario runs through it)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from streams.aws.ipranges import load_aws_ranges
from streams.core import rules
from streams.core.settings import parse_config
from streams.offline.run import detect
from streams.sources.files import iter_items

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "scenarios"
ALL = rules.all_rules()


def test_rules_are_named_ordered_and_documented():
    assert len({r.name for r in ALL}) == len(ALL)
    assert len({r.order for r in ALL}) == len(ALL)
    assert ALL[-1].stage == "call", "the last rule must decide every call left"
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Detection rules", 1)[1].split("\n## ", 1)[0]
    full = (ROOT / "docs" / "rules.md").read_text()
    for rule in ALL:
        assert f"`{rule.name}`" in section, f"README's rules do not name {rule.name}"
        assert f"`{rule.name}`" in full, f"docs/rules.md does not name {rule.name}"
        assert rule.doc and "\n" not in rule.doc


def deciding_rules(folder: Path, monkeypatch) -> Counter:
    decided: Counter = Counter()
    wrapped = []
    for rule in rules.call_rules():
        def decide(judged, rule=rule):
            verdict = rule.decide(judged)
            if verdict is not None:
                decided[rule.name] += 1
            return verdict
        wrapped.append(rules.Rule(rule.name, rule.doc, rule.order, decide, rule.scenarios))
    monkeypatch.setattr(rules, "call_rules", lambda: tuple(wrapped))
    config_path = folder / "config.yaml"
    config = parse_config(yaml.safe_load(config_path.read_text()) if config_path.exists() else {})
    detect(iter_items([str(folder / "records.jsonl")]), config, load_aws_ranges(config))
    return decided


@pytest.mark.parametrize("rule", ALL, ids=[r.name for r in ALL])
def test_each_rule_decides_in_its_scenarios(rule, monkeypatch):
    assert rule.scenarios
    for name in rule.scenarios:
        folder = SCENARIOS / name
        assert (folder / "records.jsonl").exists(), f"{rule.name}: no scenario {name}"
        assert re.search(r"\S", (folder / "README.md").read_text())
        decided = deciding_rules(folder, monkeypatch)
        if rule.stage == "call":
            assert decided[rule.name] > 0, f"{rule.name} decides nothing in {name}: {decided}"
