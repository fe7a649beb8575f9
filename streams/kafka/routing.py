"""Which partition a CloudTrail record travels to: all of an instance's records share its instance
id as key; an account's address changes go to every partition. ``partition_for`` is Kafka's own
key → partition, so the forwarder's batches and the worker's ``copies_on`` agree."""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec

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
                              "AssignIpv6Addresses", "AssignPrivateIpAddresses",
                              "ReleaseAddress", "DeleteNatGateway"})


class Route(msgspec.Struct, frozen=True, gc=False):
    """One is made for every record the forwarder sends: untracked by the garbage collector
    (it holds no cycle)."""

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
    return msgspec.structs.replace(route, keys=(*route.keys, child.encode()))


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
def _partition_in_python(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _librdkafka_partitioner() -> Callable[[bytes, int], int] | None:
    """librdkafka's own murmur2 partitioner (public in rdkafka.h, loaded with confluent-kafka),
    a third of the pure-Python hash's cost: the forwarder places every record by it. None when
    it cannot be reached, or does not give what ``murmur2`` gives."""
    try:
        from confluent_kafka import cimpl

        function = ctypes.CDLL(cimpl.__file__).rd_kafka_msg_partitioner_murmur2
    except (ImportError, OSError, AttributeError):
        return None
    function.restype = ctypes.c_int32
    function.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32,
                         ctypes.c_void_p, ctypes.c_void_p]

    def partition_for(key: bytes, partitions: int) -> int:
        return function(None, key, len(key), partitions, None, None)

    samples = [b"a", b"21", b"foobar", b"i-0123456789abcdef0", b"ASIAEXAMPLEKEY00001",
               bytes(range(256))]
    if any(partition_for(key, n) != _partition_in_python(key, n)
           for key in samples for n in (1, 7, 64, 1000)):
        return None
    return partition_for


# partition_for(key, partitions): the partition Kafka's default partitioner (Java, librdkafka's
# murmur2_random, aiokafka) gives a key.
partition_for = _librdkafka_partitioner() or _partition_in_python


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
