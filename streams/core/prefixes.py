"""Longest-prefix matching over IPv4 and IPv6 networks: one dict per prefix length, so a lookup
is one shift and one probe per distinct length (about 20 for AWS's ranges)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Generic, TypeVar

V = TypeVar("V")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=65536)
def parse_ip(text: str) -> IPAddress | None:
    """An address, or None for anything that is not one (hostnames, garbage, a zone id);
    an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is the IPv4 address it carries."""
    if "%" in text:  # IPv6 zone ids never reach CloudTrail: not an address
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class PrefixMap(Generic[V]):
    """Maps networks to values; ``lookup`` returns the value of the longest matching network."""

    def __init__(self, entries: Iterable[tuple[str, V]] = ()) -> None:
        self._tables: dict[int, dict[int, dict[int, V]]] = {4: {}, 6: {}}
        self._lengths: dict[int, list[int]] = {4: [], 6: []}
        self._count = 0
        for network, value in entries:
            self.add(network, value)

    def add(self, network: str, value: V) -> None:
        """Add a network (``10.0.0.0/16``, ``2600:1f18::/36``, or a bare address)."""
        net = ipaddress.ip_network(network, strict=False)
        bits = net.max_prefixlen
        by_length = self._tables[net.version].setdefault(net.prefixlen, {})
        key = int(net.network_address) >> (bits - net.prefixlen)
        if key not in by_length:
            self._count += 1
        by_length[key] = value
        self._lengths[net.version] = sorted(self._tables[net.version], reverse=True)

    def lookup(self, address: str | IPAddress) -> V | None:
        ip = parse_ip(address) if isinstance(address, str) else address
        if ip is None:
            return None
        bits = ip.max_prefixlen
        number = int(ip)
        tables = self._tables[ip.version]
        for length in self._lengths[ip.version]:
            value = tables[length].get(number >> (bits - length))
            if value is not None:
                return value
        return None

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str | ipaddress.IPv4Address | ipaddress.IPv6Address) and (
            self.lookup(address) is not None
        )

    def __len__(self) -> int:
        return self._count
