"""An account's addresses and networks, region by region, for ``account_networks`` (instance
IPv4/IPv6, elastic IPs, NAT gateways and VPC CIDRs), and its VPC endpoints for
``account_vpc_endpoints``. Every function takes an EC2 client built by the caller; an error in
one account or region is recorded and the rest goes on."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from streams.aws.organizations import error_code, error_text

# A region the account has not enabled answers with one of these: nothing there to miss.
REGION_NOT_ENABLED = frozenset({"OptInRequired", "AuthFailure", "UnrecognizedClientException",
                                "InvalidClientTokenId"})
LIVE_NAT_STATES = frozenset({"pending", "available"})
LIVE_CIDR_STATES = frozenset({"associating", "associated"})
ENABLED_OPT_IN = frozenset({"opt-in-not-required", "opted-in"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _pages(ec2: Any, operation: str, **kwargs: Any) -> Iterator[dict]:
    yield from ec2.get_paginator(operation).paginate(**kwargs)


def host(address: str) -> str:
    """An address as a one-address network: /32 or /128."""
    return str(ipaddress.ip_network(address))


def _interface_addresses(interface: dict) -> Iterator[str]:
    public = (interface.get("Association") or {}).get("PublicIp")
    if public:
        yield public
    for private in interface.get("PrivateIpAddresses", []):
        public = (private.get("Association") or {}).get("PublicIp")
        if public:
            yield public
    for item in interface.get("Ipv6Addresses", []):
        if item.get("Ipv6Address"):
            yield item["Ipv6Address"]


def instance_addresses(instance: dict) -> set[str]:
    found = {instance["PublicIpAddress"]} if instance.get("PublicIpAddress") else set()
    if instance.get("Ipv6Address"):
        found.add(instance["Ipv6Address"])
    for interface in instance.get("NetworkInterfaces", []):
        found.update(_interface_addresses(interface))
    return found


def instance_networks(ec2: Any) -> set[str]:
    found: set[str] = set()
    for page in _pages(ec2, "describe_instances"):
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                found.update(instance_addresses(instance))
    return {host(a) for a in found}


def elastic_ip_networks(ec2: Any) -> set[str]:
    # DescribeAddresses has no pagination: one call returns every address of the region.
    return {host(a["PublicIp"]) for a in ec2.describe_addresses().get("Addresses", [])
            if a.get("PublicIp")}


def nat_gateway_networks(ec2: Any) -> set[str]:
    found: set[str] = set()
    for page in _pages(ec2, "describe_nat_gateways"):
        for gateway in page.get("NatGateways", []):
            if gateway.get("State") not in LIVE_NAT_STATES:
                continue
            found.update(host(a["PublicIp"]) for a in gateway.get("NatGatewayAddresses", [])
                         if a.get("PublicIp"))
    return found


def _associated(block: dict, state_key: str) -> bool:
    return (block.get(state_key) or {}).get("State", "associated") in LIVE_CIDR_STATES


def vpc_networks(ec2: Any) -> set[str]:
    found: set[str] = set()
    for page in _pages(ec2, "describe_vpcs"):
        for vpc in page.get("Vpcs", []):
            found.update(b["CidrBlock"] for b in vpc.get("CidrBlockAssociationSet", [])
                         if b.get("CidrBlock") and _associated(b, "CidrBlockState"))
            if vpc.get("CidrBlock") and not vpc.get("CidrBlockAssociationSet"):
                found.add(vpc["CidrBlock"])
            found.update(b["Ipv6CidrBlock"] for b in vpc.get("Ipv6CidrBlockAssociationSet", [])
                         if b.get("Ipv6CidrBlock") and _associated(b, "Ipv6CidrBlockState"))
    return {str(ipaddress.ip_network(c, strict=False)) for c in found}


COLLECTORS: tuple[Callable[[Any], set[str]], ...] = (
    instance_networks, elastic_ip_networks, nat_gateway_networks, vpc_networks)


def region_networks(ec2: Any) -> set[str]:
    """Every network of one account in one region; botocore errors propagate."""
    found: set[str] = set()
    for collect in COLLECTORS:
        found |= collect(ec2)
    return found


def vpc_endpoints(ec2: Any) -> set[str]:
    """Every VPC endpoint id of one account in one region, whatever its state: an id is never
    reused, and a call through one deleted since may still be in the input."""
    return {endpoint["VpcEndpointId"] for page in _pages(ec2, "describe_vpc_endpoints")
            for endpoint in page.get("VpcEndpoints", []) if endpoint.get("VpcEndpointId")}


def enabled_regions(ec2: Any) -> list[str]:
    """The regions the account has enabled (DescribeRegions lists only those by default)."""
    regions = ec2.describe_regions().get("Regions", [])
    return sorted(r["RegionName"] for r in regions
                  if r.get("OptInStatus", "opt-in-not-required") in ENABLED_OPT_IN)


def caller_account(sts: Any) -> str:
    return sts.get_caller_identity()["Account"]


def role_arn(account: str, role_name: str) -> str:
    return f"arn:aws:iam::{account}:role/{role_name}"


def assume_role(sts: Any, account: str, role_name: str, external_id: str | None = None,
                session_name: str = "exfilguard-inventory") -> dict[str, str]:
    """Temporary credentials for the role, as keyword arguments of ``boto3.Session``."""
    kwargs = {"RoleArn": role_arn(account, role_name), "RoleSessionName": session_name}
    if external_id:
        kwargs["ExternalId"] = external_id
    credentials = sts.assume_role(**kwargs)["Credentials"]
    return {"aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"]}


@dataclass(frozen=True)
class Failure:
    account: str
    region: str | None  # None: the whole account (its role, its region list)
    code: str
    text: str

    @property
    def region_not_enabled(self) -> bool:
        return self.region is not None and self.code in REGION_NOT_ENABLED

    def line(self) -> str:
        where = f"{self.account} {self.region}" if self.region else self.account
        what = "region not enabled, skipped" if self.region_not_enabled else "skipped"
        return f"{where}: {self.text}; {what}"


def failure(account: str, region: str | None, exc: Exception) -> Failure:
    return Failure(account, region, error_code(exc), error_text(exc))


@dataclass
class Inventory:
    networks: dict[str, set[str]] = field(default_factory=dict)  # accounts with a region read
    failures: list[Failure] = field(default_factory=list)
    endpoints: dict[str, set[str]] = field(default_factory=dict)  # accounts with a region read
    # Regions whose networks were read but not their VPC endpoints.
    endpoint_failures: list[Failure] = field(default_factory=list)

    def incomplete(self, account: str) -> list[Failure]:
        """The failures that may hide networks of an account that was read elsewhere."""
        return [f for f in self.failures if f.account == account and not f.region_not_enabled]

    def complete_endpoints(self) -> dict[str, set[str]]:
        """The accounts whose endpoints were read in every region asked for, with endpoints:
        a partial list would make calls through the endpoints left out findings."""
        partial = {f.account for f in self.endpoint_failures}
        partial |= {f.account for f in self.failures if not f.region_not_enabled}
        return {account: ids for account, ids in self.endpoints.items()
                if ids and account not in partial}


def _read(target: tuple[str, str, Any]) -> tuple[set[str], set[str] | Failure] | Failure:
    from botocore.exceptions import BotoCoreError, ClientError

    account, region, ec2 = target
    try:
        networks = region_networks(ec2)
    except (ClientError, BotoCoreError) as exc:
        return failure(account, region, exc)
    try:  # asked apart: a role granted the network reads but not this one keeps its networks
        return networks, vpc_endpoints(ec2)
    except (ClientError, BotoCoreError) as exc:
        return networks, failure(account, region, exc)


def collect(targets: Iterable[tuple[str, str, Any]], workers: int = 8,
            inventory: Inventory | None = None) -> Inventory:
    """Read every (account, region, EC2 client), a few at a time, into one inventory."""
    inventory = inventory if inventory is not None else Inventory()
    targets = list(targets)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(_read, targets))
    for (account, _, _), result in zip(targets, results, strict=True):
        if isinstance(result, Failure):
            inventory.failures.append(result)
            continue
        networks, endpoints = result
        inventory.networks.setdefault(account, set()).update(networks)
        if isinstance(endpoints, Failure):
            inventory.endpoint_failures.append(endpoints)
        else:
            inventory.endpoints.setdefault(account, set()).update(endpoints)
    return inventory


def network_key(network: Network) -> tuple[int, int, int]:
    return network.version, int(network.network_address), network.prefixlen


def minimal(cidrs: Iterable[str]) -> list[str]:
    """Sorted, without duplicates or networks inside another one of the list."""
    networks = sorted({ipaddress.ip_network(c, strict=False) for c in cidrs}, key=network_key)
    kept: list[Network] = []
    broad: list[Network] = []  # kept networks wider than one address: the only possible holders
    for network in networks:
        # Sorted by address then length, an enclosing network precedes what it holds.
        if any(b.version == network.version and network.subnet_of(b) for b in broad):
            continue
        kept.append(network)
        if network.num_addresses > 1:
            broad.append(network)
    return [str(n) for n in kept]


def shared_networks(networks: dict[str, set[str]]) -> dict[str, list[str]]:
    """CIDRs collected for more than one account (default VPCs' 172.31.0.0/16, say)."""
    owners: dict[str, list[str]] = {}
    for account, cidrs in sorted(networks.items()):
        for cidr in cidrs:
            owners.setdefault(cidr, []).append(account)
    return {cidr: accounts for cidr, accounts in owners.items() if len(accounts) > 1}
