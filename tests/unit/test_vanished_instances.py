"""Instances the trail shows no end of (no TerminateInstances): forgotten by event time once their
keys have expired past the credential grace and nothing happened to them for as long."""

from __future__ import annotations

import pytest

from streams.aws.ipranges import load_ip_ranges
from streams.core.detector import IDLE_LOG, Detector, DetectorState
from streams.core.records import ApiCall, Issuance, NetworkChange
from streams.core.settings import parse_config
from streams.core.times import parse_time

ACCOUNT = "111122223333"
T0 = parse_time("2024-03-01T10:00:00Z")
MINUTE = 60_000
HOUR = 60 * MINUTE
LIVE = "i-0bbbbbbbbbbbbbbb2"
GONE = "i-0aaaaaaaaaaaaaaa1"


@pytest.fixture(scope="module")
def aws():
    return load_ip_ranges()


def detector(aws, clock: dict | None = None) -> Detector:
    state = DetectorState(partition_clock=clock if clock is not None else {})
    return Detector(parse_config({"finding_update_interval_seconds": 0}), aws, state)


def issue(d: Detector, at: int, instance: str, key: str) -> None:
    issuance = Issuance(f"iss-{key}", at, ACCOUNT, "us-east-1", instance,
                        f"arn:aws:iam::{ACCOUNT}:role/web", key, at + 6 * HOUR)
    d.track_issuance(issuance)
    d.observe(issuance)


def theft(d: Detector, at: int, instance: str, key: str) -> list[str]:
    return d.observe(ApiCall(
        f"t-{at}", at, ACCOUNT, "us-east-1", key, f"AROAX:{instance}", "web", instance,
        "s3.amazonaws.com", "ListBuckets", "45.33.32.156", "curl/8.4", None, None, "2.0", None))


def lifecycle(d: Detector, at: int, name: str, instance: str) -> None:
    d.observe(NetworkChange(f"{name}-{at}", at, ACCOUNT, name, (instance,), (), (), ()))


def test_an_instance_that_vanishes_without_termination_is_forgotten(aws):
    d = detector(aws)
    present = {}
    for hour in range(36):
        at = T0 + hour * HOUR
        issue(d, at, LIVE, f"ASIALIVE{hour:012d}")
        if hour <= 2:  # then it disappears: no key, no TerminateInstances in the trail
            issue(d, at + 1000, GONE, f"ASIAGONE{hour:012d}")
        if hour == 2:
            assert theft(d, at + 2000, GONE, f"ASIAGONE{hour:012d}") != []
        present[hour] = f"{ACCOUNT}/{GONE}" in d.state.instance_to_addresses
    # Its last key works until hour 8, kept an hour's grace more: never forgotten before.
    assert all(present[hour] for hour in range(10))
    # Then forgotten, late by hours at most, with its keys; its finding is still a finding.
    assert not any(present[hour] for hour in range(20, 36))
    assert not [k for k in d.state.instance_credentials if k.startswith("ASIAGONE")]
    assert [f["resource"]["instanceDetails"]["instanceId"] for f in d.findings()] == [GONE]
    assert f"{ACCOUNT}/{LIVE}" in d.state.instance_to_addresses
    # The live instance's keys older than its grace went as before (at each new issuance).
    assert len([k for k in d.state.instance_credentials if k.startswith("ASIALIVE")]) <= 8


def test_rotating_instances_write_little_to_look_again(aws):
    """A look is scheduled when an instance first appears and again when it comes due, not at
    every issuance: the clock is written about once a day per instance, in small chunks."""

    class Writes(dict):
        def __init__(self) -> None:
            super().__init__()
            self.idle = 0

        def __setitem__(self, key, value) -> None:
            self.idle += key.startswith(IDLE_LOG)
            super().__setitem__(key, value)

    clock = Writes()
    d = detector(aws, clock)
    instances = [f"i-{n:017x}" for n in range(20)]
    for hour in range(24 * 4):
        for n, instance in enumerate(instances):
            issue(d, T0 + hour * HOUR + n * 1000, instance, f"ASIAROT{n:03d}{hour:010d}")
    assert len(d.state.instance_to_addresses) == 20
    issuances = 24 * 4 * 20
    assert clock.idle < issuances / 5  # about one in seven (a look every ~7 hours)
    assert len([k for k in clock if k.startswith(IDLE_LOG)]) <= 12


def test_a_stopped_instance_is_kept_until_it_starts_again(aws):
    d = detector(aws)
    issue(d, T0, GONE, "ASIASTOP000000000001")
    lifecycle(d, T0 + MINUTE, "StopInstances", GONE)
    for hour in range(1, 40):  # another instance keeps event time moving
        issue(d, T0 + hour * HOUR, LIVE, f"ASIALIVE{hour:012d}")
    instance = d.state.instance_to_addresses[f"{ACCOUNT}/{GONE}"]
    assert instance["keys"] == {}  # its expired key forgotten, the instance kept
    assert "ASIASTOP000000000001" not in d.state.instance_credentials
    lifecycle(d, T0 + 40 * HOUR, "StartInstances", GONE)
    for hour in range(41, 60):  # started, and then it vanishes: forgotten after the grace
        issue(d, T0 + hour * HOUR, LIVE, f"ASIALIVE{hour:012d}")
    assert f"{ACCOUNT}/{GONE}" not in d.state.instance_to_addresses


def test_an_instance_launched_without_a_role_is_forgotten_after_the_grace(aws):
    d = detector(aws)
    d.observe(NetworkChange("run", T0, ACCOUNT, "RunInstances", (GONE,), (), (), (),
                            proven=((GONE, ("10.0.3.17",)),)))
    assert f"{ACCOUNT}/{GONE}" in d.state.instance_to_addresses
    for hour in range(1, 12):
        issue(d, T0 + hour * HOUR, LIVE, f"ASIALIVE{hour:012d}")
    assert f"{ACCOUNT}/{GONE}" not in d.state.instance_to_addresses


def test_an_instance_written_before_this_release_gets_its_look_at_its_next_issuance(aws):
    d = detector(aws)
    issue(d, T0, GONE, "ASIAOLD0000000000001")
    d.state.instance_to_addresses[f"{ACCOUNT}/{GONE}"].pop("idle_at")  # as written before
    for key in [k for k in d.state.partition_clock if k.startswith(IDLE_LOG)]:
        del d.state.partition_clock[key]
    del d.state.partition_clock["idle_span"]
    issue(d, T0 + HOUR, GONE, "ASIAOLD0000000000002")
    for hour in range(2, 30):
        issue(d, T0 + hour * HOUR, LIVE, f"ASIALIVE{hour:012d}")
    assert f"{ACCOUNT}/{GONE}" not in d.state.instance_to_addresses
