"""Which partition key a CloudTrail record travels under.

All of an instance's records (its issuances, every call signed with any of its keys) share one
key, the instance id, so one partition holds everything rule 7 learns per instance, and issuance
and use of each key meet on the same partition. Address changes of an account (elastic IPs, NAT
gateways) are copied to every partition; instance stop/start/terminate gets one copy per instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.core.records import ApiCall, Issuance, NetworkChange, normalise, unwrap

BROADCAST_EVENTS = frozenset({"AllocateAddress", "AssociateAddress", "CreateNatGateway"})
# On the broadcast copies of a call that also changes addresses: apply the change only.
NETWORK_ONLY_HEADER = "exfilguard-network-only"


@dataclass(frozen=True, slots=True)
class Route:
    keys: tuple[bytes | None, ...]  # one message per key
    broadcast: bool = False  # one copy per partition, under keys[0]
    # A call by an instance role that also allocates or associates addresses: keyed by its
    # instance, plus a network-only copy on every partition.
    network_broadcast: bool = False


def route_of(record: Any) -> Route:
    """The key(s) of a decoded record; a malformed record travels under its access key, for the
    worker to reject with a reason."""
    try:
        event = normalise(unwrap(record))
    except ValueError:
        event = None
    if isinstance(event, ApiCall) and event.network is not None:
        return Route((event.instance_id.encode(),),
                     network_broadcast=event.network.event_name in BROADCAST_EVENTS)
    if isinstance(event, Issuance | ApiCall):
        return Route((event.instance_id.encode(),))
    if isinstance(event, NetworkChange):
        if event.event_name in BROADCAST_EVENTS:
            return Route((event.account_id.encode() or None,), broadcast=True)
        if event.instance_ids:
            return Route(tuple(i.encode() for i in event.instance_ids))
    identity = record.get("userIdentity") if isinstance(record, dict) else None
    key = identity.get("accessKeyId") if isinstance(identity, dict) else None
    return Route((key.encode() if isinstance(key, str) and key else None,))
