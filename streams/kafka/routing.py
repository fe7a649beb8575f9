"""Which partition a CloudTrail record travels to: all of an instance's records share its instance
id as key; an account's address changes go to every partition. ``partition_for`` is Kafka's own
key → partition, so the forwarder's batches and the worker's ``copies_on`` agree."""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any, NamedTuple

from streams.core.records import (
    ApiCall,
    Event,
    Issuance,
    NetworkChange,
    minted_key,
    normalise,
    unwrap,
)

# Who holds an address is an account's, read on every partition: each keeps its own copy.
BROADCAST_EVENTS = frozenset({"AllocateAddress", "AssociateAddress", "CreateNatGateway",
                              "ReleaseAddress", "DeleteNatGateway"})


class Route(NamedTuple):  # a tuple: one is made for every record the forwarder sends
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
    return route_of_event(event, record)


def route_of_event(event: Event | None, record: Any) -> Route:
    """The key(s) of a record already normalised to ``event`` (None: not about instances).
    An AssumeRole signed with a key has a copy under the key it minted too: that key's calls
    travel under it, so the worker there reads, in order, whose key it is."""
    route = _route_of_event(event, record)
    if isinstance(event, Issuance):
        return route
    child = minted_key(unwrap(record)) if isinstance(record, dict) else None
    if child is None or route.broadcast or child.encode() in route.keys:
        return route
    return route._replace(keys=(*route.keys, child.encode()))


def _route_of_event(event: Event | None, record: Any) -> Route:
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


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), unsigned 32 bits."""
    m = 0x5BD1E995
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length >> 2
    for k in struct.unpack_from(f"<{whole}I", data) if whole else ():
        k = (k * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & 3
    if tail:
        base = whole << 2
        if tail >= 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


@lru_cache(maxsize=1 << 16)  # murmur2 is pure Python; instance ids and keys recur
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java, librdkafka's murmur2_random, aiokafka)
    gives a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partitions_of(route: Route, partitions: int) -> set[int]:
    """Every partition a batched record must be in (each once): the worker makes its copies."""
    if route.broadcast or route.network_broadcast:
        return set(range(partitions))
    if partitions == 1:
        return {0}  # every key's partition, and where a keyless record is spread to
    return {partition_for(key, partitions) for key in route.keys if key is not None}


def copies_on(route: Route, partition: int, partitions: int) -> list[tuple[bytes | None, bool]]:
    """The (key, network only) copies of a record that belong on ``partition``: the messages
    one-per-record forwarding would have put there."""
    if route.broadcast:
        return [(route.keys[0], False)]
    copies = [(key, False) for key in route.keys
              if key is None or partition_for(key, partitions) == partition]
    if route.network_broadcast:
        copies.append((route.keys[0], True))
    return copies


def counted_here(route: Any, partition: int, partitions: int, batched: bool,
                  key: bytes | None, network_only: bool) -> bool:
    """Whether this copy of a record is the one that counts: a record sent to several
    partitions (address changes to all, lifecycle events to each instance's) counts once."""
    if batched:
        targets = partitions_of(route, partitions)
        return not targets or partition == min(targets)
    if network_only:
        return False
    if route.broadcast:
        return partition == 0
    return key == route.keys[0]
