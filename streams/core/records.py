"""CloudTrail records to the few event kinds detection needs. ``decode`` is the hot path: a byte
pre-filter drops the ~95% that cannot matter before any JSON is decoded; ``normalise`` gives
an ``Issuance``, ``ApiCall``, ``NetworkChange`` or None, or raises ``MalformedRecord``."""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import msgspec

from streams.core.prefixes import parse_ip
from streams.core.rules.instance_credentials import INSTANCE_ID, SESSION_ARN, instance_session
from streams.core.times import BadTime, parse_expiration, parse_time

NETWORK_EVENTS = frozenset({
    "AllocateAddress", "AssociateAddress", "CreateNatGateway",
    "StartInstances", "StopInstances", "TerminateInstances", "RunInstances",
    "AssignIpv6Addresses", "AssignPrivateIpAddresses",
    "ReleaseAddress", "DeleteNatGateway",  # an account's address given back, a gateway gone
})
# They name a network interface, not an instance: its RunInstances tells whose it is.
ASSIGN_EVENTS = frozenset({"AssignIpv6Addresses", "AssignPrivateIpAddresses"})
# Event names that matter whoever calls them: an issuance, or a change of addresses.
_NAMES_THAT_MATTER = frozenset({b"AssumeRole"} | {name.encode() for name in NETWORK_EVENTS})
_EVENT_NAME_KEY = b'"eventName"'
MAX_RECORD_BYTES = 512 << 10  # twice the largest CloudTrail record (256 KB): not a record


class MalformedRecord(ValueError):
    """A record that cannot be judged; the message is the reason given to the dead-letter topic."""


@dataclass(frozen=True, slots=True)
class Issuance:
    """ec2.amazonaws.com delivering a role's credentials to an instance (sts:AssumeRole)."""

    event_id: str
    event_time: int
    account_id: str
    region: str
    instance_id: str
    role_arn: str
    access_key_id: str
    expiration: int | None


@dataclass(frozen=True, slots=True)
class Derivation:
    """What an ``sts:AssumeRole`` signed with a key minted: the child key, its role, its expiry."""

    child_key: str
    role_arn: str
    session_name: str
    expiration: int | None


@dataclass(frozen=True, slots=True)
class ApiCall:
    """A call signed by a session whose name is an instance id."""

    event_id: str
    event_time: int
    account_id: str
    region: str
    access_key_id: str
    principal_id: str
    role_name: str
    instance_id: str
    event_source: str
    event_name: str
    source_ip: str
    user_agent: str
    vpc_endpoint_id: str | None
    vpc_endpoint_account_id: str | None
    ec2_role_delivery: str | None
    invoked_by: str | None
    # Set when the call itself allocates or associates addresses (an instance role doing so
    # at boot): the detector learns from it before judging the call.
    network: NetworkChange | None = None
    # Set when the call is an sts:AssumeRole that minted a key (key lineage): the detector binds
    # the child key to the signer's instance after judging the call.
    derivation: Derivation | None = None
    # The sharedEventID of a cross-account call: each account's trail has a copy, counted once.
    shared_event_id: str | None = None
    error_code: str | None = None  # CloudTrail's errorCode: AccessDenied and the like

    @property
    def is_derived_session(self) -> bool:
        """Signed by a session not named with an instance id: judged only if its key is derived."""
        return not self.instance_id

    @property
    def dedupe_id(self) -> str:
        """What makes two records one call: the shared event id, else the event id."""
        return f"shared:{self.shared_event_id}" if self.shared_event_id else self.event_id

    @property
    def service_name(self) -> str:
        return self.event_source.removesuffix(".amazonaws.com")


@dataclass(frozen=True, slots=True)
class NetworkChange:
    """An event that tells which addresses an account or an instance holds, or resets them."""

    event_id: str
    event_time: int
    account_id: str
    event_name: str
    instance_ids: tuple[str, ...]
    public_ips: tuple[str, ...]
    allocations: tuple[tuple[str, str], ...]  # (allocation id, public ip)
    allocation_ids: tuple[str, ...]  # referenced, ip unknown here (AssociateAddress)
    # Addresses CloudTrail proves an instance's: (instance id, addresses) from RunInstances (its
    # interfaces' IPv4 and IPv6); (network interface id, addresses) from an Assign* event.
    proven: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # (network interface id, instance id) of the interfaces a RunInstances launched.
    interfaces: tuple[tuple[str, str], ...] = ()
    nat_gateway_ids: tuple[str, ...] = ()  # CreateNatGateway, DeleteNatGateway
    # CreateNatGateway: allocations the gateway got that its request did not name (the
    # account's own elastic IPs, named, stay allocated when the gateway is deleted).
    gateway_allocations: tuple[str, ...] = ()


Event = Issuance | ApiCall | NetworkChange

_decoder = msgspec.json.Decoder()


_ACCESS_KEY_KEY = b'"accessKeyId"'


def signing_keys(raw: bytes) -> list[bytes]:
    """Every ``accessKeyId`` value in the record's bytes (a scan, no decode); the signer's is
    among them wherever the writer put ``userIdentity``."""
    found = []
    at = raw.find(_ACCESS_KEY_KEY)
    while at >= 0:
        value = raw[at + len(_ACCESS_KEY_KEY): at + len(_ACCESS_KEY_KEY) + 48].lstrip(b" \t\r\n")
        if value[:1] == b":":
            value = value[1:].lstrip(b" \t\r\n")
            if value[:1] == b'"':
                found.append(value[1:].split(b'"', 1)[0])
        at = raw.find(_ACCESS_KEY_KEY, at + 1)
    return found


def may_matter(raw: bytes, derived: Container[bytes] = ()) -> bool:
    """False only for records that certainly cannot matter to detection.

    A few scans instead of a JSON decode: an instance session's ARN is
    ``assumed-role/ROLE/i-…`` (any case, slashes maybe escaped), issuances and address
    changes are told by their ``eventName`` (every occurrence read), a key in ``derived`` by one
    lookup; a record with a ``\\u`` escape is always decoded.
    """
    if b"\\u" in raw:
        return True  # an escape can spell any name below: only a decode can tell
    at = raw.find(b"assumed-role")
    while at >= 0:
        # assumed-role/ROLE/SESSION (or with escaped slashes): is the session an instance id?
        role = at + 13 if raw[at + 12: at + 13] == b"/" else at + 14  # past "/" or "\\/"
        slash = raw.find(b"/", role, role + 80)
        if slash >= 0 and raw[slash + 1: slash + 3] in (b"i-", b"I-"):
            return True
        at = raw.find(b"assumed-role", at + 12)
    at = raw.find(_EVENT_NAME_KEY)
    while at >= 0:
        value = raw[at + len(_EVENT_NAME_KEY): at + len(_EVENT_NAME_KEY) + 40]
        value = value.lstrip(b" \t\r\n")
        if value[:1] == b":":
            value = value[1:].lstrip(b" \t\r\n")
            if value[:1] == b'"' and value[1:].split(b'"', 1)[0] in _NAMES_THAT_MATTER:
                return True
        at = raw.find(_EVENT_NAME_KEY, at + 1)
    if derived:
        return any(key in derived for key in signing_keys(raw))
    return False


def decode(raw: bytes, derived: Container[str] = ()) -> Event | None:
    """Bytes of one record (a JSON object) → event, None when irrelevant, or MalformedRecord.
    A call signed with a key in ``derived`` is an event whatever its session's name."""
    return decode_record(raw, derived)[0]


def decode_record(raw: bytes, derived: Container[str] = (),
                  derived_bytes: Container[bytes] = ()) -> tuple[Event | None, Any]:
    """As ``decode``, with the decoded record (None when skipped undecoded); ``derived_bytes``
    holds the same keys as bytes for the pre-filter (the hot path's one lookup)."""
    if not raw.strip():
        raise MalformedRecord("empty record")
    if len(raw) > MAX_RECORD_BYTES:
        raise MalformedRecord(f"record of {len(raw)} bytes exceeds {MAX_RECORD_BYTES}")
    if derived and not derived_bytes:
        derived_bytes = _AsBytes(derived)
    if not may_matter(raw, derived_bytes):
        return None, None
    try:
        record = decode_json(raw)
    except msgspec.DecodeError as exc:
        raise MalformedRecord(f"not JSON: {exc}") from None
    except RecursionError:
        raise MalformedRecord("not JSON a decoder can take: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise MalformedRecord(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    return normalise(unwrap(record), derived), record


class _AsBytes:
    """A container of str keys looked up with bytes."""

    def __init__(self, keys: Container[str]) -> None:
        self.keys = keys

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and key.decode(errors="replace") in self.keys

    def __bool__(self) -> bool:
        return True


# A \\uD800-\\uDFFF escape that is not half of a pair (an even run of backslashes before it).
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*)\\u(?:[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<![dD][89abAB][0-9a-fA-F]{2})[dD][c-fC-F][0-9a-fA-F]{2})")


def decode_json(raw: bytes) -> Any:
    """msgspec's decode; a lone surrogate escape (a caller's User-Agent can hold one) becomes
    U+FFFD, so the record is judged rather than dropped as not JSON."""
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError:
        if b"\\u" not in raw:
            raise
        repaired = _LONE_SURROGATE.sub(rb"\1\\ufffd", raw)
        if repaired == raw:
            raise
        return _decoder.decode(repaired)


def unwrap(record: Any) -> Any:
    """An EventBridge event carries the CloudTrail record in ``detail``."""
    if isinstance(record, dict) and "detail" in record and "eventName" not in record:
        detail = record["detail"]
        if isinstance(detail, dict):
            return detail
    return record


def event_time_of(record: dict) -> int:
    """``eventTime``, or ``@timestamp`` written by log shippers."""
    value = record.get("eventTime")
    if value is None:
        value = record.get("@timestamp")
    try:
        return parse_time(value)
    except BadTime as exc:
        raise MalformedRecord(f"eventTime: {exc}") from None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def normalise(record: Any, derived: Container[str] = ()) -> Event | None:
    if not isinstance(record, dict):
        raise MalformedRecord(f"a record must be a JSON object, got {type(record).__name__}")
    name = record.get("eventName")
    if not isinstance(name, str):
        if "eventVersion" in record or "userIdentity" in record:
            raise MalformedRecord("eventName missing or not a string")
        raise MalformedRecord("not a CloudTrail record (no eventName)")
    identity = _obj(record.get("userIdentity"))
    if name == "AssumeRole" and identity.get("invokedBy") == "ec2.amazonaws.com":
        return _issuance(record)
    arn = identity.get("arn")
    if isinstance(arn, str) and ":assumed-role/" in arn:
        call = _instance_call(record, identity, arn, derived)
        if call is not None:
            call = _with_lineage(call, record, name)
            if name in NETWORK_EVENTS and record.get("eventSource") == "ec2.amazonaws.com":
                change = _network_change(record, name)
                if change is not None:
                    call = replace(call, network=change)
            return call
    if name in NETWORK_EVENTS and record.get("eventSource") == "ec2.amazonaws.com":
        return _network_change(record, name)
    return None


def _issuance(record: dict) -> Issuance | None:
    request = _obj(record.get("requestParameters"))
    session = _str(request.get("roleSessionName"))
    if session is None or not INSTANCE_ID.match(session):
        return None  # EC2 assuming a role for something other than an instance profile
    credentials = _obj(_obj(record.get("responseElements")).get("credentials"))
    key = _str(credentials.get("accessKeyId"))
    if key is None:
        if record.get("errorCode"):
            return None  # a failed delivery issues nothing
        raise MalformedRecord("instance credential issuance without an access key id")
    role_arn = _str(request.get("roleArn")) or ""
    arn_parts = role_arn.split(":")
    account = (arn_parts[4] if len(arn_parts) > 4 and arn_parts[4]
               else _str(record.get("recipientAccountId")))
    return Issuance(
        event_id=_str(record.get("eventID")) or "",
        event_time=event_time_of(record),
        account_id=account or "",
        region=_str(record.get("awsRegion")) or "",
        instance_id=session.lower(),
        role_arn=role_arn,
        access_key_id=key,
        expiration=parse_expiration(credentials.get("expiration")),
    )


def _instance_call(record: dict, identity: dict, arn: str,
                   derived: Container[str] = ()) -> ApiCall | None:
    key = _str(identity.get("accessKeyId"))
    match = instance_session(arn)  # the rule instance-credentials-only
    if match is None:
        match = SESSION_ARN.match(arn)
        if match is None or key is None or key not in derived:
            return None
        session = ""  # a derived key's session: its instance comes from the key's lineage
    else:
        session = match["session"].lower()
    if key is None:
        if record.get("eventName") == "ConsoleLogin" and session:
            key = ""  # a console sign-in carries no key; it opens a console session
        else:
            return None  # other keyless calls (some service calls) judge nothing
    source = record.get("sourceIPAddress")
    if not isinstance(source, str) or not source:
        raise MalformedRecord("sourceIPAddress missing on an instance-credential call")
    if parse_ip(source) is None and not _is_service_source(source):
        raise MalformedRecord(f"sourceIPAddress {source[:80]!r} is neither an IP address nor an "
                              "AWS service name")
    context = _obj(identity.get("sessionContext"))
    delivery = context.get("ec2RoleDelivery")
    return ApiCall(
        event_id=_str(record.get("eventID")) or "",
        event_time=event_time_of(record),
        account_id=_str(identity.get("accountId")) or match["account"],
        region=_str(record.get("awsRegion")) or "",
        access_key_id=key,
        principal_id=_str(identity.get("principalId")) or "",
        role_name=match["role"],
        instance_id=session,
        event_source=_str(record.get("eventSource")) or "",
        event_name=record["eventName"],
        source_ip=canonical_source(source),
        user_agent=_str(record.get("userAgent")) or "",
        vpc_endpoint_id=_str(record.get("vpcEndpointId")),
        vpc_endpoint_account_id=_str(record.get("vpcEndpointAccountId")),
        ec2_role_delivery=str(delivery) if delivery is not None else None,
        invoked_by=_str(identity.get("invokedBy")),
        error_code=_str(record.get("errorCode")),
    )


def _with_lineage(call: ApiCall, record: dict, name: str) -> ApiCall:
    """An sts:AssumeRole that minted a key carries its ``Derivation`` and shared event id."""
    if name != "AssumeRole" or record.get("errorCode"):
        return call
    credentials = _obj(_obj(record.get("responseElements")).get("credentials"))
    child = _str(credentials.get("accessKeyId"))
    if child is None:
        return call
    request = _obj(record.get("requestParameters"))
    derivation = Derivation(child_key=child, role_arn=_str(request.get("roleArn")) or "",
                            session_name=_str(request.get("roleSessionName")) or "",
                            expiration=parse_expiration(credentials.get("expiration")))
    return replace(call, derivation=derivation, shared_event_id=_str(record.get("sharedEventID")))


def minted_key(record: Any) -> str | None:
    """The key an AssumeRole signed with a key minted (None for anything else)."""
    if not isinstance(record, dict) or record.get("eventName") != "AssumeRole":
        return None
    identity = _obj(record.get("userIdentity"))
    if _str(identity.get("accessKeyId")) is None or record.get("errorCode"):
        return None
    return _str(_obj(_obj(record.get("responseElements")).get("credentials")).get("accessKeyId"))


@lru_cache(maxsize=65536)  # an address's spelling is rebuilt by ipaddress in Python; they recur
def canonical_source(source: str) -> str:
    """One spelling per address (IPv6 has many), so equal addresses compare equal."""
    ip = parse_ip(source)
    return str(ip) if ip is not None else source


def _is_service_source(source: str) -> bool:
    return source == "AWS Internal" or (
        source.endswith(".amazonaws.com") and " " not in source
    )


def is_on_behalf(call: ApiCall) -> bool:
    """A call an AWS service made for the principal: its source is the service, not a thief."""
    return call.invoked_by is not None or _is_service_source(call.source_ip)


def _walk(value: Any, found: dict[str, list]) -> None:
    """Collect the string values of ``found``'s keys, depth first in document order; a stack,
    not recursion, so no nesting a decoder accepts can overflow it."""
    stack: list[tuple[Any, Any]] = [(None, value)]
    while stack:
        key, value = stack.pop()
        if key in found and isinstance(value, str):
            found[key].append(value)
        elif isinstance(value, dict):
            stack.extend(reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((None, item) for item in reversed(value))


def _network_change(record: dict, name: str) -> NetworkChange | None:
    if record.get("errorCode"):
        return None
    found: dict[str, list] = {"publicIp": [], "allocationId": [], "instanceId": []}
    _walk(record.get("requestParameters"), found)
    _walk(record.get("responseElements"), found)
    ips = tuple(dict.fromkeys(ip for ip in found["publicIp"] if parse_ip(ip) is not None))
    instances = tuple(dict.fromkeys(i.lower() for i in found["instanceId"] if INSTANCE_ID.match(i)))
    allocations: tuple[tuple[str, str], ...] = ()
    if name == "AllocateAddress" and len(ips) == 1 and len(found["allocationId"]) >= 1:
        allocations = ((found["allocationId"][0], ips[0]),)
    identity = _obj(record.get("userIdentity"))
    account = _str(record.get("recipientAccountId")) or _str(identity.get("accountId")) or ""
    proven: tuple[tuple[str, tuple[str, ...]], ...] = ()
    interfaces: tuple[tuple[str, str], ...] = ()
    if name == "RunInstances":
        proven = _launched_addresses(record)
        instances = tuple(instance for instance, _ in proven)
        interfaces = _launched_interfaces(record)
        ips = ()
    elif name in ASSIGN_EVENTS:
        proven = _assigned_addresses(record)
        instances = ips = ()
    gateways: tuple[str, ...] = ()
    gateway_allocations: tuple[str, ...] = ()
    if name in ("CreateNatGateway", "DeleteNatGateway"):
        gateways, allocations, gateway_allocations = _nat_gateway(record)
    return NetworkChange(
        event_id=_str(record.get("eventID")) or "",
        event_time=event_time_of(record),
        account_id=account,
        event_name=name,
        instance_ids=instances,
        public_ips=ips,
        allocations=allocations,
        allocation_ids=tuple(dict.fromkeys(found["allocationId"])),
        proven=proven,
        interfaces=interfaces,
        nat_gateway_ids=gateways,
        gateway_allocations=gateway_allocations,
    )


def _nat_gateway(record: dict) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...],
                                        tuple[str, ...]]:
    """A NAT gateway's ids (``natGatewayId``, ``NatGatewayId`` in a wrapped request), the
    (allocation, public address) pairs its response names, and those of its allocations the
    request did not name."""
    request, response = record.get("requestParameters"), record.get("responseElements")
    found: dict[str, list] = {"natGatewayId": [], "NatGatewayId": []}
    _walk(request, found)
    _walk(response, found)
    gateways = tuple(dict.fromkeys(g for values in found.values() for g in values
                                   if g.startswith("nat-")))
    named = set(_allocation_ids(request))
    pairs = []
    stack = [response]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            allocation, ip = value.get("allocationId"), value.get("publicIp")
            if (isinstance(allocation, str) and isinstance(ip, str)
                    and parse_ip(ip) is not None):
                pairs.append((allocation, ip))
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    pairs = list(dict.fromkeys(sorted(pairs)))
    own = tuple(dict.fromkeys(a for a in _allocation_ids(response) if a not in named))
    return gateways, tuple(pairs), own


def _allocation_ids(value: Any) -> list[str]:
    """Every elastic IP allocation id in ``value``, whatever the key (``AllocationId``,
    ``allocationId``, a list of secondary ones)."""
    ids: list[str] = []
    stack = [value]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and value.startswith("eipalloc-"):
            ids.append(value)
    return sorted(set(ids))


def _launched_addresses(record: dict) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each launched instance's addresses in the RunInstances response (its interfaces'
    private IPv4 and IPv6 addresses, a public IPv4 when one is given)."""
    items = _obj(_obj(record.get("responseElements")).get("instancesSet")).get("items")
    launched = []
    for item in items if isinstance(items, list) else []:
        instance = _str(_obj(item).get("instanceId"))
        if instance is None or not INSTANCE_ID.match(instance):
            continue
        found: dict[str, list] = {"privateIpAddress": [], "ipv6Address": [], "ipAddress": [],
                                  "publicIp": []}
        _walk(item, found)
        addresses = [canonical_source(a) for values in found.values() for a in values
                     if parse_ip(a) is not None]
        launched.append((instance.lower(), tuple(sorted(set(addresses)))))
    return tuple(launched)


def _launched_interfaces(record: dict) -> tuple[tuple[str, str], ...]:
    """(network interface id, instance id) for each interface a RunInstances response names."""
    items = _obj(_obj(record.get("responseElements")).get("instancesSet")).get("items")
    interfaces = []
    for item in items if isinstance(items, list) else []:
        instance = _str(_obj(item).get("instanceId"))
        if instance is None or not INSTANCE_ID.match(instance):
            continue
        found: dict[str, list] = {"networkInterfaceId": []}
        _walk(_obj(item).get("networkInterfaceSet"), found)
        interfaces += [(eni, instance.lower()) for eni in found["networkInterfaceId"]
                       if eni.startswith("eni-")]
    return tuple(dict.fromkeys(interfaces))


# Where an Assign* record lists the addresses it gave: the response's sets (EC2's XML turned
# to JSON: a list, {"item": ...} or {"items": [...]}, of strings or {ipv6Address|privateIpAddress}),
# else the request's own list when the response carries none (older API versions answer only
# ``_return: true``).
_ASSIGNED_KEYS = ("assignedIpv6Addresses", "assignedPrivateIpAddressesSet")
_REQUESTED_KEYS = ("ipv6Addresses", "Ipv6Addresses", "ipv6AddressesSet", "privateIpAddressesSet",
                   "PrivateIpAddress", "privateIpAddress")


def _assigned_addresses(record: dict) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(network interface id, addresses) an AssignIpv6Addresses or AssignPrivateIpAddresses
    gave, from its response (the request's when the response lists none)."""
    response, request = record.get("responseElements"), record.get("requestParameters")
    found: dict[str, list] = {"networkInterfaceId": [], "NetworkInterfaceId": []}
    _walk(response, found)
    _walk(request, found)
    enis = [eni for eni in found["networkInterfaceId"] + found["NetworkInterfaceId"]
            if eni.startswith("eni-")]
    if not enis:
        return ()
    addresses = _addresses_under(response, _ASSIGNED_KEYS) or _addresses_under(
        request, _REQUESTED_KEYS)
    if not addresses:
        return ()
    return ((enis[0], tuple(sorted(set(addresses)))),)


def _addresses_under(value: Any, keys: tuple[str, ...]) -> list[str]:
    """Every address string anywhere below one of ``keys`` in ``value``, canonical."""
    addresses: list[str] = []
    stack = [(False, value)]
    while stack:
        inside, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((inside or key in keys, item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((inside, item) for item in value)
        elif inside and isinstance(value, str) and parse_ip(value) is not None:
            addresses.append(canonical_source(value))
    return addresses
