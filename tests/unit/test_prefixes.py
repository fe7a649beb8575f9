"""Longest-prefix lookups and AWS's ranges."""

from __future__ import annotations

import pytest

from streams.aws.ipranges import load_ip_ranges
from streams.core.awsranges import BadIpRanges, parse_ip_ranges
from streams.core.prefixes import PrefixMap


def test_longest_prefix_wins():
    table = PrefixMap([("10.0.0.0/8", "wide"), ("10.1.0.0/16", "narrow")])
    assert table.lookup("10.1.2.3") == "narrow"
    assert table.lookup("10.2.0.1") == "wide"
    assert table.lookup("11.0.0.1") is None


def test_ipv6_and_ipv4_are_kept_apart():
    table = PrefixMap([("2600:1f18::/33", "v6"), ("0.0.0.0/0", "any-v4")])
    assert table.lookup("2600:1f18::1") == "v6"
    assert table.lookup("2a00:1450::1") is None
    assert table.lookup("192.0.2.1") == "any-v4"


def test_garbage_is_not_an_address():
    table = PrefixMap([("0.0.0.0/0", True)])
    assert table.lookup("not an ip") is None
    assert "ec2.amazonaws.com" not in table


def test_shipped_snapshot_knows_aws_addresses():
    ranges = load_ip_ranges()
    assert ranges.lookup("3.225.16.109").region == "us-east-1"
    assert "EC2" in ranges.lookup("52.45.102.28").services
    assert ranges.lookup("2600:1f18::1") is not None
    assert ranges.lookup("8.8.8.8") is None
    assert ranges.lookup("192.168.10.20") is None


def test_a_file_that_is_not_ip_ranges_is_refused(tmp_path):
    with pytest.raises(BadIpRanges, match="prefixes"):
        parse_ip_ranges({"hello": 1})
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(BadIpRanges, match="not JSON"):
        load_ip_ranges(path)
