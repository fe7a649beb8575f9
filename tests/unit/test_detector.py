"""The detector's state machine: pending calls, late issuances, aggregation, redelivery, expiry."""

from __future__ import annotations

import pytest

from streams.aws.ipranges import load_ip_ranges
from streams.core.detector import Detector
from streams.core.finding_types import INSIDE_AWS, OUTSIDE_AWS
from streams.core.records import ApiCall, Issuance, NetworkChange
from streams.core.settings import parse_config
from streams.core.times import parse_time

ACCOUNT = "111122223333"
INSTANCE = "i-0123456789abcdef0"
KEY = "ASIAAAAAAAAAAAAAAAA1"
T0 = parse_time("2024-03-01T10:00:00Z")
MINUTE = 60_000
ATTACKER = "45.33.32.156"


@pytest.fixture(scope="module")
def aws():
    return load_ip_ranges()


def issuance(at=T0, key=KEY, instance=INSTANCE, event_id="iss"):
    return Issuance(event_id, at, ACCOUNT, "us-east-1", instance,
                    f"arn:aws:iam::{ACCOUNT}:role/web", key, at + 6 * 60 * MINUTE)


def call(at, ip, key=KEY, event_id=None, delivery="2.0", instance=INSTANCE, **extra):
    fields = dict(
        event_id=event_id or f"c{at}-{ip}", event_time=at, account_id=ACCOUNT,
        region="us-east-1", access_key_id=key, principal_id=f"AROAX:{instance}", role_name="web",
        instance_id=instance, event_source="s3.amazonaws.com", event_name="ListBuckets",
        source_ip=ip, user_agent="aws-cli", vpc_endpoint_id=None, vpc_endpoint_account_id=None,
        ec2_role_delivery=delivery, invoked_by=None)
    fields.update(extra)
    return ApiCall(**fields)


def detector(aws, **config):
    return Detector(parse_config({"finding_update_interval_seconds": 0, **config}), aws)


def test_theft_from_outside_aws(aws):
    d = detector(aws)
    d.observe(issuance())
    changed = d.observe(call(T0 + MINUTE, ATTACKER))
    assert len(changed) == 1
    finding = d.render(changed[0])
    assert (finding["type"], finding["severity"]) == (OUTSIDE_AWS, 8)
    assert finding["evidence"]["issuanceEventId"] == "iss"


def test_call_before_its_issuance_waits_then_ties_to_it(aws):
    d = detector(aws)
    assert d.observe(call(T0 + MINUTE, ATTACKER, delivery=None)) == []  # pending
    changed = d.observe(issuance(at=T0))
    assert len(changed) == 1
    assert d.render(changed[0])["evidence"]["issuanceEventId"] == "iss"


def test_without_issuance_or_delivery_marker_it_is_not_instance_credentials(aws):
    d = detector(aws, late_arrival_grace_seconds=60)
    d.observe(call(T0, ATTACKER, delivery=None))
    # event time moves on past the grace: the call is judged and dropped
    d.observe(call(T0 + 5 * MINUTE, "198.51.100.1", key="ASIAOTHER", delivery=None))
    assert d.flush() == []
    assert d.counters.calls_dropped_not_instance == 2


def test_key_issued_before_the_job_is_judged_after_the_grace(aws):
    d = detector(aws, late_arrival_grace_seconds=60)
    assert d.observe(call(T0, ATTACKER)) == []
    changed = d.observe(call(T0 + 2 * MINUTE, "203.0.113.5", key="ASIAUNRELATED"))
    assert len(changed) == 1  # released by event time, not by the wall clock
    assert d.render(changed[0])["evidence"]["issuanceEventId"] is None


def test_calls_from_one_attacker_fold_into_one_finding(aws):
    d = detector(aws)
    d.observe(issuance())
    for i in range(5):
        d.observe(call(T0 + i * MINUTE, ATTACKER))
    d.observe(call(T0 + 9 * MINUTE, "185.220.101.1"))
    findings = d.findings()
    assert [f["service"]["count"] for f in findings] == [5, 1]
    assert findings[0]["service"]["eventLastSeen"] == "2024-03-01T10:04:00.000Z"


def test_a_redelivered_call_is_not_counted_twice(aws):
    d = detector(aws)
    d.observe(issuance())
    d.observe(call(T0 + MINUTE, ATTACKER, event_id="same"))
    assert d.observe(call(T0 + MINUTE, ATTACKER, event_id="same")) == []
    assert d.findings()[0]["service"]["count"] == 1


def test_instance_address_is_learned_across_its_keys(aws):
    d = detector(aws)
    d.observe(issuance(key="ASIAV1KEY", event_id="i1"))
    d.observe(issuance(key="ASIAV2KEY", event_id="i2"))
    assert d.observe(call(T0 + MINUTE, "3.225.16.109", key="ASIAV1KEY", delivery="1.0")) == []
    assert d.observe(call(T0 + 2 * MINUTE, "3.225.16.109", key="ASIAV2KEY")) == []
    changed = d.observe(call(T0 + 3 * MINUTE, "52.45.102.28", key="ASIAV1KEY", delivery="1.0"))
    finding = d.render(changed[0])
    assert (finding["type"], finding["severity"]) == (INSIDE_AWS, 8)
    assert finding["evidence"]["instanceKnownAddresses"] == ["3.225.16.109"]
    assert finding["evidence"]["imdsV1"] is True


def test_foreign_vpc_endpoint_of_an_associated_account_is_medium(aws):
    d = detector(aws, associated_accounts=["444455556666"])
    d.observe(issuance())
    changed = d.observe(call(T0 + MINUTE, "10.1.2.3", vpc_endpoint_id="vpce-1",
                             vpc_endpoint_account_id="444455556666"))
    finding = d.render(changed[0])
    assert finding["severity"] == 5
    assert finding["service"]["action"]["awsApiCallAction"]["remoteAccountDetails"] == {
        "accountId": "444455556666", "affiliated": True}


def test_elastic_ip_allocated_in_another_account_names_that_account(aws):
    d = detector(aws)
    d.observe(NetworkChange("n1", T0, "999988887777", "AllocateAddress", (), ("54.152.0.10",),
                            (("eipalloc-9", "54.152.0.10"),), ("eipalloc-9",)))
    d.observe(issuance())
    changed = d.observe(call(T0 + MINUTE, "54.152.0.10"))
    action = d.render(changed[0])["service"]["action"]["awsApiCallAction"]
    assert action["remoteAccountDetails"] == {"accountId": "999988887777", "affiliated": False}


def test_expired_keys_are_forgotten_when_the_instance_gets_new_ones(aws):
    d = detector(aws, credential_grace_seconds=0)
    d.observe(issuance(key="ASIAOLD", event_id="i1"))
    d.observe(call(T0 + MINUTE, ATTACKER, key="ASIAOLD"))
    d.observe(issuance(at=T0 + 7 * 60 * MINUTE, key="ASIANEW", event_id="i2"))
    assert "ASIAOLD" not in d.state.instance_credentials
    assert d.state.finding_aggregates == {}
    assert "ASIANEW" in d.state.instance_credentials


def test_terminated_instance_is_forgotten_after_its_keys_expire(aws):
    d = detector(aws, credential_grace_seconds=0)
    d.observe(issuance())
    d.observe(NetworkChange("t", T0 + MINUTE, ACCOUNT, "TerminateInstances", (INSTANCE,), (), (),
                            ()))
    # Keys outlive the instance: a theft right after termination is still caught.
    assert d.observe(call(T0 + 2 * MINUTE, ATTACKER)) != []
    d.observe(call(T0 + 7 * 60 * MINUTE, "203.0.113.1", key="ASIAELSE", delivery=None))
    assert KEY not in d.state.instance_credentials
    assert f"{ACCOUNT}/{INSTANCE}" not in d.state.instance_to_addresses


def test_stop_start_makes_the_instance_relearn_its_address(aws):
    d = detector(aws)
    d.observe(issuance())
    d.observe(call(T0 + MINUTE, "3.225.16.109"))
    d.observe(NetworkChange("s", T0 + 2 * MINUTE, ACCOUNT, "StartInstances", (INSTANCE,), (), (),
                            ()))
    assert d.observe(call(T0 + 3 * MINUTE, "52.45.102.28")) == []


def test_pending_buffer_is_bounded(aws):
    d = detector(aws, max_pending_per_key=3)
    for i in range(10):  # no issuance, no delivery marker: each waits, the oldest judged first
        d.observe(call(T0 + i, ATTACKER, event_id=f"e{i}", delivery=None))
    assert len(d.state.pending_calls[f"{ACCOUNT}/{INSTANCE}"]) == 3
    assert d.counters.calls_dropped_not_instance == 7
    d.flush()
    assert d.counters.calls_dropped_not_instance == 10 and not d.state.pending_calls


def test_pending_calls_with_the_delivery_marker_all_count_once_judged(aws):
    d = detector(aws, max_pending_per_key=3)
    for i in range(10):
        d.observe(call(T0 + i, ATTACKER, event_id=f"e{i}"))
    # The oldest, pushed out, makes the key known instance credentials: the rest follow at once.
    assert not d.state.pending_calls
    assert d.findings()[0]["service"]["count"] == 10


def test_same_events_in_another_order_give_the_same_findings(aws):
    events = [issuance(), call(T0 + MINUTE, ATTACKER), call(T0 + 2 * MINUTE, ATTACKER),
              call(T0 + 3 * MINUTE, "185.220.101.1")]
    forward, backward = detector(aws), detector(aws)
    for event in events:
        forward.observe(event)
    for event in reversed(events):
        backward.observe(event)
    forward.flush()
    backward.flush()
    assert forward.findings() == backward.findings()


class WriteLog(dict):
    """A dict that notes the size of each value written, as a table's changelog would."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[int] = []

    def __setitem__(self, key, value) -> None:
        import json

        self.written.append(len(json.dumps(value)))
        super().__setitem__(key, value)


def test_a_call_waiting_writes_little_however_many_instances_wait(aws):
    from streams.core.detector import DetectorState

    clock = WriteLog()
    d = Detector(parse_config({"finding_update_interval_seconds": 0}), aws,
                 DetectorState(partition_clock=clock))
    for n in range(2000):  # 2,000 instances with calls waiting for their keys' issuance
        at = T0 + n * 100
        d.observe(call(at, ATTACKER, key=f"ASIAWAIT{n:012d}", instance=f"i-{n:017x}",
                       delivery=None))
    assert len(d.state.pending_calls) > 1500
    # Each write is a bucket of a second of due times (ten instances here) or the list of
    # seconds held, never an index of all who wait (100 KB here).
    assert max(clock.written) < 5_000
    clock.written.clear()
    d.observe(call(T0 + 2000 * 100, ATTACKER, key="ASIAWAITLAST00000000", instance="i-" + "f" * 17,
                   delivery=None))
    assert sum(clock.written) < 10_000
    # And they are all released once their grace has passed, in order.
    changed = d.observe(issuance(at=T0 + 60 * MINUTE, key="ASIANEW0000000000000"))
    assert changed == [] and not d.state.pending_calls
    assert d.counters.calls_dropped_not_instance == 2001
    assert not [k for k in clock if k.startswith("pending_due/")]


def test_a_pending_index_written_by_an_older_version_is_taken_over(aws):
    d = detector(aws)
    d.observe(call(T0 + MINUTE, ATTACKER, delivery="2.0"))
    index = {}
    for key in [k for k in d.state.partition_clock if k.startswith("pending_due/")]:
        index.update(d.state.partition_clock.pop(key))
    d.state.partition_clock.pop("pending_buckets")
    d.state.partition_clock["pending_index"] = index  # as the first release kept it
    changed = d.observe(call(T0 + 10 * MINUTE, "10.0.0.1", key="ASIAOTHER00000000000",
                             instance="i-0fedcba9876543210"))
    assert len(changed) == 1  # the old call, due, judged from the index it was in
    assert "pending_index" not in d.state.partition_clock


def test_the_stream_tables_are_the_detector_state_fields():
    from dataclasses import fields

    from streams.app.wiring import TABLES
    from streams.core.detector import DetectorState

    assert list(TABLES) == [f.name for f in fields(DetectorState)]
