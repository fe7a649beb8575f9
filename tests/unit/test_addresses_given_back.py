"""Addresses an account gives back: ReleaseAddress and DeleteNatGateway decoded, routed to every
partition, and ``address_to_account`` holding only what is allocated now."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from streams.aws.ipranges import load_ip_ranges
from streams.core.detector import Detector
from streams.core.records import ApiCall, Issuance, NetworkChange, decode, may_matter, normalise
from streams.core.settings import parse_config
from streams.kafka.routing import partitions_of, route_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cloudtrail_builders import (  # noqa: E402
    allocate_address,
    associate_address,
    at,
    call,
    delete_nat_gateway,
    disassociate_address,
    issuance,
    nat_gateway,
    release_address,
)

OWNER = "111122223333"
STRANGER = "999988887777"
INSTANCE = "i-0123456789abcdef0"
KEY = "ASIAGIVENBACK0000001"
EIP = "52.45.102.40"
ALLOC = "eipalloc-0e1e2e3e4e5e6e7e8"


@pytest.fixture(scope="module")
def aws():
    return load_ip_ranges()


def raw(record: dict) -> bytes:
    return json.dumps(record).encode()


def event(builder, **kwargs):
    return decode(raw(builder(event_id=f"e-{builder.__name__}-{kwargs.get('time')}", **kwargs)))


def release(minutes: float, allocation_id: str | None = ALLOC, public_ip: str | None = None,
            account: str = OWNER):
    return event(release_address, time=at(minutes), allocation_id=allocation_id,
                 public_ip=public_ip, account=account)


def allocate(minutes: float, ip: str = EIP, allocation_id: str = ALLOC, account: str = OWNER):
    return event(allocate_address, time=at(minutes), public_ip=ip, allocation_id=allocation_id,
                 account=account)


def gateway(minutes: float, gateway_id: str, allocation_id: str = ALLOC,
            public_ip: str | None = EIP):
    return event(nat_gateway, time=at(minutes), allocation_id=allocation_id,
                 nat_gateway_id=gateway_id, subnet_id="subnet-0c1c2d3e4f5a6b7c8",
                 vpc_id="vpc-0abc1234def567890", private_ip="10.0.4.12", public_ip=public_ip)


def delete(minutes: float, gateway_id: str):
    return event(delete_nat_gateway, time=at(minutes), nat_gateway_id=gateway_id)


def detector(aws) -> Detector:
    return Detector(parse_config({"finding_update_interval_seconds": 0}), aws)


def held(d: Detector) -> dict:
    """What the account holds now (the table also remembers releases of the last day)."""
    return {k: v for k, v in d.state.address_to_account.items()
            if not k.startswith("released:")}


def judged(d: Detector, minutes: float, ip: str) -> list[str]:
    record = call(event_id=f"c-{minutes}-{ip}", time=at(minutes), access_key=KEY,
                  instance_id=INSTANCE, source_ip=ip)
    parsed = decode(raw(record))
    assert isinstance(parsed, ApiCall)
    return d.observe(parsed)


def issued(d: Detector, minutes: float = 0) -> None:
    parsed = decode(raw(issuance(event_id=f"i-{minutes}", time=at(minutes),
                                 instance_id=INSTANCE, access_key=KEY)))
    assert isinstance(parsed, Issuance)
    d.track_issuance(parsed)
    d.observe(parsed)


# -- decoding, the pre-filter, routing ------------------------------------------------------------


def test_release_address_names_the_allocation_or_the_classic_address():
    vpc = release(1)
    assert isinstance(vpc, NetworkChange) and vpc.event_name == "ReleaseAddress"
    assert (vpc.account_id, vpc.allocation_ids, vpc.public_ips) == (OWNER, (ALLOC,), ())
    classic = release(1, allocation_id=None, public_ip="54.152.0.11")
    assert (classic.allocation_ids, classic.public_ips) == ((), ("54.152.0.11",))


def test_a_failed_release_changes_nothing():
    record = release_address(event_id="e-failed", time=at(1), allocation_id=ALLOC)
    record.update(errorCode="InvalidIPAddress.InUse", responseElements=None)
    assert decode(raw(record)) is None


def test_nat_gateways_are_named_and_pair_their_allocations_with_addresses():
    created = gateway(1, "nat-0c1c2c3c4c5c6c7c8")
    assert created.nat_gateway_ids == ("nat-0c1c2c3c4c5c6c7c8",)
    assert created.allocations == ((ALLOC, EIP),)
    assert created.gateway_allocations == ()  # its request named the elastic IP: the account's
    deleted = delete(2, "nat-0c1c2c3c4c5c6c7c8")
    assert deleted.event_name == "DeleteNatGateway"
    assert deleted.nat_gateway_ids == ("nat-0c1c2c3c4c5c6c7c8",)


def test_an_address_the_gateway_got_unasked_is_the_gateways():
    record = nat_gateway(event_id="e-auto", time=at(1), allocation_id="eipalloc-0aaa1111bbb22223",
                         nat_gateway_id="nat-0a0a0a0a0a0a0a0a0", subnet_id="subnet-0c1c2d3e4f5a",
                         vpc_id="vpc-0abc1234def567890", private_ip="10.0.4.12",
                         public_ip="52.45.102.20")
    del record["requestParameters"]["CreateNatGatewayRequest"]["AllocationId"]
    created = decode(raw(record))
    assert created.gateway_allocations == ("eipalloc-0aaa1111bbb22223",)


def test_disassociating_is_not_an_address_change():
    record = disassociate_address(event_id="e-d", time=at(1), association_id="eipassoc-01")
    assert decode(raw(record)) is None


@pytest.mark.parametrize("builder, kwargs", [
    (release_address, {"allocation_id": ALLOC}),
    (release_address, {"public_ip": "54.152.0.11"}),
    (delete_nat_gateway, {"nat_gateway_id": "nat-0c1c2c3c4c5c6c7c8"}),
])
def test_the_pre_filter_keeps_them_and_every_partition_gets_them(builder, kwargs):
    record = builder(event_id="e-1", time=at(1), **kwargs)
    assert may_matter(raw(record))
    assert decode(raw(record)) == normalise(record) is not None
    route = route_of(record)
    assert route.broadcast and partitions_of(route, 6) == set(range(6))


# -- what the account holds ---------------------------------------------------------------------


def test_a_released_elastic_ip_is_no_longer_the_accounts(aws):
    d = detector(aws)
    d.observe(allocate(1))
    assert d.state.address_to_account == {f"ip:{EIP}": OWNER, f"alloc:{OWNER}/{ALLOC}": EIP}
    d.observe(release(2))
    assert held(d) == {}


def test_a_classic_address_is_released_by_itself(aws):
    d = detector(aws)
    d.observe(NetworkChange("a", 1, OWNER, "AllocateAddress", (), ("54.152.0.11",), (), ()))
    d.observe(release(2, allocation_id=None, public_ip="54.152.0.11"))
    assert held(d) == {}


def test_disassociating_keeps_the_address_the_accounts(aws):
    d = detector(aws)
    issued(d)
    d.observe(allocate(1))
    d.observe(event(associate_address, time=at(2), allocation_id=ALLOC, instance_id=INSTANCE,
                    association_id="eipassoc-01"))
    assert judged(d, 3, EIP) == []
    assert event(disassociate_address, time=at(4), association_id="eipassoc-01") is None
    assert d.state.address_to_account[f"ip:{EIP}"] == OWNER
    assert judged(d, 5, EIP) == []


def test_a_release_does_not_take_the_address_from_its_next_holder(aws):
    """Two accounts' trails need not come in order: the stranger's allocation of the address
    read before the owner's release of it."""
    d = detector(aws)
    d.observe(allocate(1))
    d.observe(allocate(3, allocation_id="eipalloc-0f0f0f0f0f0f0f0f0", account=STRANGER))
    d.observe(release(4))
    assert held(d) == {f"ip:{EIP}": STRANGER, f"alloc:{STRANGER}/eipalloc-0f0f0f0f0f0f0f0f0": EIP}


def test_deleting_a_nat_gateway_keeps_its_elastic_ip_until_released(aws):
    d = detector(aws)
    d.observe(gateway(1, "nat-0c1c2c3c4c5c6c7c8"))
    d.observe(delete(2, "nat-0c1c2c3c4c5c6c7c8"))
    assert d.state.address_to_account == {f"ip:{EIP}": OWNER, f"alloc:{OWNER}/{ALLOC}": EIP}
    d.observe(release(3))  # the pair the gateway's response named finds the address
    assert held(d) == {}


def test_a_gateways_own_addresses_go_with_it(aws):
    record = nat_gateway(event_id="e-auto", time=at(1), allocation_id=ALLOC,
                         nat_gateway_id="nat-0a0a0a0a0a0a0a0a0", subnet_id="subnet-0c1c2d3e4f5a",
                         vpc_id="vpc-0abc1234def567890", private_ip="10.0.4.12", public_ip=EIP)
    del record["requestParameters"]["CreateNatGatewayRequest"]["AllocationId"]
    d = detector(aws)
    d.observe(decode(raw(record)))
    assert d.state.address_to_account[f"nat:{OWNER}/nat-0a0a0a0a0a0a0a0a0"] == [ALLOC]
    d.observe(delete(2, "nat-0a0a0a0a0a0a0a0a0"))
    assert held(d) == {}


def test_churn_leaves_only_what_is_allocated(aws):
    """A year of an account allocating, associating and releasing: the table holds the live."""
    d = detector(aws)
    for n in range(300):
        ip, allocation = f"52.45.{n // 200}.{n % 200 + 1}", f"eipalloc-{n:017x}"
        d.observe(allocate(n * 60, ip=ip, allocation_id=allocation))
        d.observe(gateway(n * 60 + 1, f"nat-{n:017x}", allocation_id=allocation,
                          public_ip=None))
        if n >= 3:  # three live at a time
            d.observe(delete(n * 60 + 2, f"nat-{n - 3:017x}"))
            d.observe(release(n * 60 + 3, allocation_id=f"eipalloc-{n - 3:017x}"))
    assert len(held(d)) == 3 * 2
    # A release is remembered a day (an hour apart here: about 24 of them), then forgotten,
    # with the allocation it freed (a re-read association still finds its address).
    remembered = [k for k in d.state.address_to_account if k not in held(d)]
    freed = [k for k in remembered if k.startswith("released:alloc:")]
    assert 20 <= len(freed) == len(remembered) - len(freed) <= 24 + 2


def test_the_same_account_allocating_its_released_address_again_holds_it_again(aws):
    d = detector(aws)
    issued(d)
    assert judged(d, 1, "3.225.16.109") == []  # its own public address, learned first
    d.observe(allocate(2))
    d.observe(event(associate_address, time=at(3), allocation_id=ALLOC, instance_id=INSTANCE,
                    association_id="eipassoc-01"))
    assert judged(d, 4, EIP) == []
    d.observe(release(5))
    assert judged(d, 6, EIP) != []  # released: whoever calls from it is not the instance
    d.observe(allocate(7, allocation_id="eipalloc-0123401234012340a"))  # recovered
    d.observe(event(associate_address, time=at(8), allocation_id="eipalloc-0123401234012340a",
                    instance_id=INSTANCE, association_id="eipassoc-02"))
    assert judged(d, 9, EIP) == []
    instance = d.state.instance_to_addresses[f"{OWNER}/{INSTANCE}"]
    assert EIP not in (instance.get("released") or ())


def test_a_call_from_before_the_release_read_again_is_judged_as_it_was(aws):
    """A worker restarted after the release re-reads calls made while the address was the
    account's: still silent. The release is forgotten a day later."""
    d = detector(aws)
    issued(d)
    assert judged(d, 1, "3.225.16.109") == []
    d.observe(allocate(2))
    assert judged(d, 3, EIP) == []
    d.observe(release(4))
    assert judged(d, 5, EIP) != []
    assert judged(d, 3, EIP) == []  # read again
    assert sorted(d.state.address_to_account) == [f"released:{EIP}",
                                                  f"released:alloc:{OWNER}/{ALLOC}"]
    issued(d, 25 * 60)  # a day and more later: the release is forgotten
    assert d.state.address_to_account == {}
    assert not [k for k in d.state.partition_clock if k.startswith("released_log/")]


# -- allocation ids are their account's ---------------------------------------------------------


def test_another_accounts_allocation_of_the_same_id_read_again_leaves_the_address_alone(aws):
    """Two accounts in one trail with one allocation id (the chaos trials' merged scenarios
    had it): the stranger's allocation, association and release of it, with the owner's
    allocation read again after them (a restarted worker's re-read), left the owner's NAT
    address the stranger's, and the instance's calls from it InsideAWS."""
    d = detector(aws)
    issued(d)
    d.observe(allocate(1))
    assert judged(d, 2, EIP) == []
    other = "52.45.102.41"
    d.observe(allocate(3, ip=other, account=STRANGER))
    association = event(associate_address, time=at(4), allocation_id=ALLOC,
                        instance_id="i-0f0f0f0f0f0f0f0f0", association_id="eipassoc-09",
                        account=STRANGER)
    d.observe(association)
    d.observe(release(5, account=STRANGER))
    d.observe(allocate(1))  # read again, then what followed it
    d.observe(allocate(3, ip=other, account=STRANGER))
    d.observe(association)
    assert d.state.address_to_account[f"ip:{EIP}"] == OWNER
    assert judged(d, 6, EIP) == []


def test_allocations_an_earlier_version_kept_without_the_account_are_read_for_it_alone(aws):
    d = detector(aws)
    issued(d)
    d.state.address_to_account.update({f"ip:{EIP}": OWNER, f"alloc:{ALLOC}": EIP})
    stranger = event(associate_address, time=at(1), allocation_id=ALLOC,
                     instance_id="i-0f0f0f0f0f0f0f0f0", association_id="eipassoc-09",
                     account=STRANGER)
    d.observe(stranger)  # not the stranger's allocation: it names no address of theirs
    assert d.state.address_to_account[f"ip:{EIP}"] == OWNER
    d.observe(event(associate_address, time=at(2), allocation_id=ALLOC, instance_id=INSTANCE,
                    association_id="eipassoc-01"))
    instance = d.state.instance_to_addresses[f"{OWNER}/{INSTANCE}"]
    assert EIP in instance["proven"]
    d.observe(release(3))
    assert held(d) == {}
    assert d.state.address_to_account[f"released:alloc:{OWNER}/{ALLOC}"][0] == EIP
