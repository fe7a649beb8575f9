"""Addresses proven through a network interface: AssignIpv6Addresses and AssignPrivateIpAddresses
name an interface, which the instance's RunInstances ties to it."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from cloudtrail_builders import (  # noqa: E402
    assign_ipv6_addresses,
    assign_private_ip_addresses,
    at,
    run_instances,
)

from streams.aws.ipranges import load_aws_ranges  # noqa: E402
from streams.core.detector import Detector  # noqa: E402
from streams.core.records import normalise  # noqa: E402
from streams.core.settings import parse_config  # noqa: E402

OWNER = "111122223333"
INSTANCE = "i-0123456789abcdef0"
ENI = "eni-0e1e2e3e4e5e6e7e8"


def detector_after(*records: dict) -> Detector:
    config = parse_config({})
    detector = Detector(config, load_aws_ranges(config))
    for record in records:
        detector.observe(normalise(record))
    return detector


def proven(detector: Detector) -> list[str]:
    return detector.state.instance_to_addresses[f"{OWNER}/{INSTANCE}"]["proven"]


def launched(interface: str = ENI) -> dict:
    return run_instances(event_id="e-run", time=at(-5), instance_id=INSTANCE,
                         private_ip="10.0.3.18", interface_id=interface)


def test_assigned_addresses_of_the_instances_interface_are_proven_its_own():
    detector = detector_after(
        launched(),
        assign_private_ip_addresses(event_id="e-p", time=at(-4), interface_id=ENI,
                                    private_ips=["10.0.3.40", "10.0.3.41"]),
        assign_ipv6_addresses(event_id="e-6", time=at(-3), interface_id=ENI,
                              ipv6=["2600:1F18:1234:5600:0:0:0:7A"]))
    assert proven(detector) == ["10.0.3.18", "10.0.3.40", "10.0.3.41", "2600:1f18:1234:5600::7a"]


def test_an_interface_no_runinstances_named_proves_nothing():
    detector = detector_after(
        launched(),
        assign_ipv6_addresses(event_id="e-6", time=at(-3), interface_id="eni-0000000000000000a",
                              ipv6=["2600:1f18:1234:5600::7a"]))
    assert proven(detector) == ["10.0.3.18"]


def test_the_request_names_the_addresses_when_the_response_lists_none():
    record = assign_private_ip_addresses(event_id="e-p", time=at(-4), interface_id=ENI,
                                         private_ips=[])
    record["requestParameters"] = {"networkInterfaceId": ENI, "privateIpAddressesSet": {
        "item": [{"privateIpAddress": "10.0.3.50"}]}}
    record["responseElements"] = {"requestId": "r-1", "_return": True}
    assert normalise(record).proven == ((ENI, ("10.0.3.50",)),)
    assert proven(detector_after(launched(), record)) == ["10.0.3.18", "10.0.3.50"]


def test_a_failed_assignment_proves_nothing():
    record = assign_ipv6_addresses(event_id="e-6", time=at(-3), interface_id=ENI,
                                   ipv6=["2600:1f18:1234:5600::7a"])
    record["errorCode"] = "Client.UnauthorizedOperation"
    assert normalise(record) is None
