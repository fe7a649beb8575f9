"""VPC endpoints CloudTrail names no owner for: the config key's errors, and the calls nothing
can be said of counted for the metric users alert on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams.aws.ipranges import load_aws_ranges
from streams.core.settings import ConfigError, parse_config
from streams.offline.run import detect
from streams.sources.files import iter_items

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_calls_through_an_endpoint_of_unknown_owner_are_counted():
    config = parse_config({})
    path = SCENARIOS / "unknown-endpoint-nothing-known" / "records.jsonl"
    findings, _, detector = detect(iter_items([str(path)]), config, load_aws_ranges(config))
    assert findings == []
    assert detector.counters.calls_endpoint_owner_unknown == 3


def test_declared_endpoints_leave_nothing_uncounted():
    folder = SCENARIOS / "unknown-endpoint-declared"
    config = parse_config(yaml.safe_load((folder / "config.yaml").read_text()))
    _, _, detector = detect(iter_items([str(folder / "records.jsonl")]), config,
                            load_aws_ranges(config))
    assert detector.counters.calls_endpoint_owner_unknown == 0


@pytest.mark.parametrize(("raw", "says"), [
    ({"account_vpc_endpoints": ["vpce-0a1b2c3d4e5f60718"]}, "mapping of account id"),
    ({"account_vpc_endpoints": {"111122223333": ["vpc-0a1b2c3d"]}},
     "account_vpc_endpoints.111122223333[0]: 'vpc-0a1b2c3d' is not a VPC endpoint id"),
    ({"account_vpc_endpoints": {"1111": ["vpce-0a1b2c3d4e5f60718"]}}, "account_vpc_endpoints"),
])
def test_a_bad_endpoint_config_names_the_key_and_the_mend(raw, says):
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw)
