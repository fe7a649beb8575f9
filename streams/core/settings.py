"""Detection settings: the config's detection keys validated into one immutable value. Every
key is optional; a wrong key, CIDR or account id fails naming it: a typo never turns a rule off."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.core.finding_types import FINDING_TYPES, SHORT_TYPES
from streams.core.prefixes import PrefixMap

ACCOUNT_ID = re.compile(r"[0-9]{12}")  # fullmatch: ASCII digits, no trailing newline
# A trusted network this broad silences a large share of the internet: refused unless the
# config sets allow_broad_trusted_cidrs. Change the bounds here if your egress needs more.
MIN_TRUSTED_PREFIX = {4: 8, 6: 32}

# Tunables: defaults a user changes in the config file, not here.
DEFAULT_UPDATE_INTERVAL_S = 900  # GuardDuty's own default for publishing updates
DEFAULT_LATE_ARRIVAL_GRACE_S = 300  # how long a call waits for its issuance, in event time
DEFAULT_CREDENTIAL_GRACE_S = 3600  # how long a key is kept past its expiration
DEFAULT_MAX_PENDING_PER_KEY = 256  # calls held per unknown key before the oldest is judged


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class SuppressionRule:
    """GuardDuty-style filter: every criterion given must match; a match archives the finding."""

    name: str
    finding_type: str | None = None
    remote_account: str | None = None
    remote_cidr: str | None = None
    role: str | None = None
    instance: str | None = None
    # remote_cidr parsed once: a check per finding and rule must not parse it again.
    remote_network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = field(
        default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.remote_cidr is not None and self.remote_network is None:
            object.__setattr__(self, "remote_network", ipaddress.ip_network(self.remote_cidr))


@dataclass(frozen=True)
class DetectionConfig:
    associated_accounts: frozenset[str] = frozenset()
    trusted_ip_cidrs: tuple[str, ...] = ()
    account_networks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # account → its VPC endpoint ids (``exfilguard inventory`` collects them): decides a call
    # through an endpoint CloudTrail names no owner for.
    account_vpc_endpoints: Mapping[str, frozenset[str]] = field(default_factory=dict)
    aws_ip_ranges: str | None = None
    finding_update_interval_seconds: int = DEFAULT_UPDATE_INTERVAL_S
    late_arrival_grace_seconds: int = DEFAULT_LATE_ARRIVAL_GRACE_S
    credential_grace_seconds: int = DEFAULT_CREDENTIAL_GRACE_S
    max_pending_per_key: int = DEFAULT_MAX_PENDING_PER_KEY
    suppression_rules: tuple[SuppressionRule, ...] = ()
    geoip: bool = True
    # MaxMind DB files (GeoLite2/GeoIP2, DB-IP Lite): `geoip: {country_db: ..., asn_db: ...}`.
    # Paths only: the edge (streams.geo) opens them.
    geoip_country_db: str | None = None
    geoip_asn_db: str | None = None
    # Derived lookups, built once.
    trusted: PrefixMap[bool] = field(default_factory=PrefixMap, compare=False, repr=False)
    declared: PrefixMap[str] = field(default_factory=PrefixMap, compare=False, repr=False)

    def is_associated(self, account_id: str | None) -> bool:
        return account_id is not None and account_id in self.associated_accounts


_KEYS = (
    "associated_accounts",
    "trusted_ip_cidrs",
    "account_networks",
    "account_vpc_endpoints",
    "aws_ip_ranges",
    "finding_update_interval_seconds",
    "late_arrival_grace_seconds",
    "credential_grace_seconds",
    "max_pending_per_key",
    "suppression_rules",
    "geoip",
    "allow_broad_trusted_cidrs",
)
_GEOIP_KEYS = ("country_db", "asn_db")
_RULE_KEYS = ("name", "finding_type", "remote_account", "remote_cidr", "role", "instance")


_VPC_ENDPOINT = re.compile(r"^vpce-[0-9a-f]{8,17}$")


def _endpoint(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _VPC_ENDPOINT.match(value):
        raise ConfigError(f"{where}: {value!r} is not a VPC endpoint id (vpce- and 8 or 17 hex "
                          "digits, as `aws ec2 describe-vpc-endpoints` lists them)")
    return value


def _account(value: Any, where: str) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not ACCOUNT_ID.fullmatch(text):
        raise ConfigError(f"{where}: {value!r} is not a 12-digit AWS account id (quote it in YAML)")
    return text


def _cidr(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {value!r} is not a CIDR such as 198.51.100.0/24")
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a CIDR such as 198.51.100.0/24") from None


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _whole(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected a whole number ≥ {minimum}, got {value!r}")
    return value


def parse_config(raw: Mapping[str, Any] | None) -> DetectionConfig:
    """Validate the detection keys of a config mapping (the ``kafka:`` section is not ours)."""
    raw = dict(raw or {})
    raw.pop("kafka", None)
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(f"unknown key {key!r}; known keys are {', '.join(_KEYS)} and kafka")
    associated = frozenset(
        _account(a, f"associated_accounts[{i}]")
        for i, a in enumerate(_list(raw.get("associated_accounts"), "associated_accounts"))
    )
    trusted = tuple(
        _cidr(c, f"trusted_ip_cidrs[{i}]")
        for i, c in enumerate(_list(raw.get("trusted_ip_cidrs"), "trusted_ip_cidrs"))
    )
    allow_broad = raw.get("allow_broad_trusted_cidrs", False)
    if not isinstance(allow_broad, bool):
        raise ConfigError(f"allow_broad_trusted_cidrs: expected true or false, got {allow_broad!r}")
    for i, cidr in enumerate(trusted):
        network = ipaddress.ip_network(cidr)
        if network.prefixlen < MIN_TRUSTED_PREFIX[network.version] and not allow_broad:
            raise ConfigError(
                f"trusted_ip_cidrs[{i}]: {cidr} trusts {network.num_addresses:.3g} addresses, "
                f"so a thief calling from any of them goes unseen; give your egress networks "
                f"(/{MIN_TRUSTED_PREFIX[network.version]} or narrower), or set "
                "allow_broad_trusted_cidrs: true if you mean it")
    networks_raw = raw.get("account_networks") or {}
    if not isinstance(networks_raw, Mapping):
        raise ConfigError("account_networks: expected a mapping of account id to CIDR list")
    networks: dict[str, tuple[str, ...]] = {}
    for account, cidrs in networks_raw.items():
        account_id = _account(account, "account_networks")
        networks[account_id] = tuple(
            _cidr(c, f"account_networks.{account_id}[{i}]")
            for i, c in enumerate(_list(cidrs, f"account_networks.{account_id}"))
        )
    endpoints_raw = raw.get("account_vpc_endpoints") or {}
    if not isinstance(endpoints_raw, Mapping):
        raise ConfigError("account_vpc_endpoints: expected a mapping of account id to a list of "
                          "VPC endpoint ids (vpce-...)")
    endpoints: dict[str, frozenset[str]] = {}
    for account, ids in endpoints_raw.items():
        account_id = _account(account, "account_vpc_endpoints")
        endpoints[account_id] = frozenset(
            _endpoint(e, f"account_vpc_endpoints.{account_id}[{i}]")
            for i, e in enumerate(_list(ids, f"account_vpc_endpoints.{account_id}")))
    ranges = raw.get("aws_ip_ranges")
    if ranges is not None and not isinstance(ranges, str):
        raise ConfigError(f"aws_ip_ranges: expected a file path, got {ranges!r}")
    rules = []
    for i, rule in enumerate(_list(raw.get("suppression_rules"), "suppression_rules")):
        rules.append(_rule(rule, f"suppression_rules[{i}]"))
    geoip = raw.get("geoip", True)
    databases: dict[str, str] = {}
    if isinstance(geoip, dict):
        for key, path in geoip.items():
            if key not in _GEOIP_KEYS:
                raise ConfigError(f"geoip.{key}: unknown key; known keys are "
                                  f"{', '.join(_GEOIP_KEYS)}")
            if not isinstance(path, str) or not path:
                raise ConfigError(f"geoip.{key}: expected the path of a .mmdb file, got {path!r}")
            databases[key] = path
        if not databases:
            raise ConfigError("geoip: name country_db, asn_db or both (MaxMind DB files), or "
                              "write true or false")
        geoip = True
    elif not isinstance(geoip, bool):
        raise ConfigError(f"geoip: expected true, false or {{country_db: ..., asn_db: ...}}, "
                          f"got {geoip!r}")
    config = DetectionConfig(
        associated_accounts=associated,
        trusted_ip_cidrs=trusted,
        account_networks=networks,
        account_vpc_endpoints=endpoints,
        aws_ip_ranges=ranges,
        finding_update_interval_seconds=_whole(
            raw.get("finding_update_interval_seconds", DEFAULT_UPDATE_INTERVAL_S),
            "finding_update_interval_seconds"),
        late_arrival_grace_seconds=_whole(
            raw.get("late_arrival_grace_seconds", DEFAULT_LATE_ARRIVAL_GRACE_S),
            "late_arrival_grace_seconds"),
        credential_grace_seconds=_whole(
            raw.get("credential_grace_seconds", DEFAULT_CREDENTIAL_GRACE_S),
            "credential_grace_seconds"),
        max_pending_per_key=_whole(
            raw.get("max_pending_per_key", DEFAULT_MAX_PENDING_PER_KEY), "max_pending_per_key", 1),
        suppression_rules=tuple(rules),
        geoip=geoip,
        geoip_country_db=databases.get("country_db"),
        geoip_asn_db=databases.get("asn_db"),
    )
    for cidr in trusted:
        config.trusted.add(cidr, True)
    for account_id, cidrs in networks.items():
        for cidr in cidrs:
            config.declared.add(cidr, account_id)
    return config


def _rule(rule: Any, where: str) -> SuppressionRule:
    if not isinstance(rule, Mapping):
        raise ConfigError(f"{where}: expected a mapping with name and criteria")
    for key in rule:
        if key not in _RULE_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r}; known keys are {', '.join(_RULE_KEYS)}")
    name = rule.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: every suppression rule needs a name")
    for key in _RULE_KEYS[1:]:
        if key in rule and (rule[key] is None or rule[key] == ""):
            raise ConfigError(f"{where}.{key} ({name}): empty; give a value or leave the key out "
                              "(an empty criterion would archive every finding)")
    if len(rule) == 1:
        raise ConfigError(
            f"{where} ({name}): give at least one criterion, or it archives everything")
    finding_type = rule.get("finding_type")
    # The short name (OutsideAWS), as backtest labels take it, or GuardDuty's full type.
    if finding_type is not None and not isinstance(finding_type, str):
        raise ConfigError(f"{where}.finding_type: expected a finding type name, got "
                          f"{finding_type!r}")
    finding_type = SHORT_TYPES.get(finding_type, finding_type)
    if finding_type is not None and finding_type not in FINDING_TYPES:
        raise ConfigError(f"{where}.finding_type: {finding_type!r} is not one of "
                          f"{', '.join(SHORT_TYPES)} or {', '.join(FINDING_TYPES)}")
    for key in ("role", "instance"):
        if key in rule and not isinstance(rule[key], str):
            raise ConfigError(f"{where}.{key}: expected a string, got {rule[key]!r}")
    return SuppressionRule(
        name=name,
        finding_type=finding_type,
        remote_account=(_account(rule["remote_account"], f"{where}.remote_account")
                        if "remote_account" in rule else None),
        remote_cidr=_cidr(rule["remote_cidr"], f"{where}.remote_cidr") if "remote_cidr" in rule
        else None,
        role=rule.get("role"),
        instance=rule["instance"].lower() if "instance" in rule else None,
    )
