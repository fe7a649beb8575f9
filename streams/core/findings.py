"""Findings: one aggregate per (type, access key, remote account or address), plain JSON-able
data any table can hold, and ``render``, a pure function of it and the config into GuardDuty's
finding shape, so the stream and ``detect`` print the same bytes."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from typing import Any

from streams.core.finding_types import TYPES
from streams.core.prefixes import parse_ip
from streams.core.records import ApiCall
from streams.core.rules import Verdict
from streams.core.settings import DetectionConfig, SuppressionRule
from streams.core.times import format_time

SCHEMA_VERSION = "2.0"
FIRST_EVENTS_KEPT = 5  # evidence: the earliest offending events, by (time, event id)
# service.additionalInfo.apiCalls: the calls made with the key from the remote address, by
# name; this many shown (the most frequent), at most API_CALLS_KEPT names counted per finding.
API_CALLS_SHOWN = 20
API_CALLS_KEPT = 64
# What a thief reaches for first: flagged ``sensitive`` in apiCalls. IAM writes are every IAM
# call but the reads (Get, List, Generate, Simulate).
SENSITIVE_CALLS = frozenset({
    "sts:AssumeRole", "secretsmanager:GetSecretValue", "ssm:GetParameter", "ssm:GetParameters",
    "ssm:GetParametersByPath", "kms:Decrypt", "s3:GetObject", "signin:GetSigninToken",
})
IAM_READS = ("Get", "List", "Generate", "Simulate")

# ip → (country code, country name, asn, asn org); the edge passes one in, or None.
IpEnricher = Callable[[str], tuple[str | None, str | None, int | None, str | None] | None]

def finding_id(finding_type: str, access_key: str, remote: str) -> str:
    """32 hex digits, like GuardDuty's ids; the same inputs give the same id on every run."""
    digest = hashlib.sha256(f"{finding_type}|{access_key}|{remote}".encode()).hexdigest()
    return digest[:32]


def new_aggregate(call: ApiCall, credential: dict, verdict: Verdict, known: list[str],
                  detected_at: int) -> dict[str, Any]:
    remote = verdict.remote_account or call.source_ip
    fid = finding_id(verdict.finding_type or "", call.access_key_id, remote)
    aggregate = {
        "id": fid,
        "type": verdict.finding_type,
        "severity": int(verdict.severity or 0),
        "rule": verdict.reason,
        "account": credential["account"],
        "region": call.region,
        "access_key": call.access_key_id,
        "principal_id": call.principal_id,
        "role": credential.get("role") or call.role_name,
        "instance": credential["instance"],
        "remote_account": verdict.remote_account,
        "affiliated": verdict.affiliated,
        "remote_ip": call.source_ip,
        "api": call.event_name,
        "service": call.service_name,
        "user_agent": call.user_agent,
        "first_ms": call.event_time,
        "last_ms": call.event_time,
        "count": 1,
        "first_events": [[call.event_time, call.event_id]],
        "issuance": credential.get("issuance"),
        "delivery": call.ec2_role_delivery or credential.get("delivery"),
        "known_addresses": sorted(known),
        "detected_at": detected_at,
    }
    if credential.get("derived_from"):
        aggregate["derived_from"] = credential["derived_from"]
    if verdict.reason == "vpc-endpoint-not-the-owners":
        aggregate["vpc_endpoint"] = call.vpc_endpoint_id
    aggregate["api_calls"] = {}
    _count_api_call(aggregate, call)
    return aggregate


def _count_api_call(aggregate: dict[str, Any], call: ApiCall) -> None:
    """api_calls: name → [service, count, first ms, last ms, {error code: count}]."""
    calls = aggregate.setdefault("api_calls", {})
    entry = calls.get(call.event_name)
    if entry is None:
        if len(calls) >= API_CALLS_KEPT:
            return
        entry = calls[call.event_name] = [call.service_name, 0, call.event_time,
                                          call.event_time, {}]
    entry[1] += 1
    entry[2] = min(entry[2], call.event_time)
    entry[3] = max(entry[3], call.event_time)
    if call.error_code:
        entry[4][call.error_code] = entry[4].get(call.error_code, 0) + 1


def is_sensitive(service: str, name: str) -> bool:
    if service == "iam":
        return not name.startswith(IAM_READS)
    return f"{service}:{name}" in SENSITIVE_CALLS


def api_calls(aggregate: dict[str, Any]) -> list[dict[str, Any]]:
    """The most frequent calls first (then by name), as GuardDuty's anomaly findings list them."""
    entries = sorted((aggregate.get("api_calls") or {}).items(),
                     key=lambda item: (-item[1][1], item[0]))[:API_CALLS_SHOWN]
    return [{"name": name, "serviceName": service, "count": count,
             "firstSeen": format_time(first), "lastSeen": format_time(last),
             "errorCodes": dict(sorted(errors.items())),
             "sensitive": is_sensitive(service, name)}
            for name, (service, count, first, last, errors) in entries]


def update_aggregate(aggregate: dict[str, Any], call: ApiCall, verdict: Verdict) -> bool:
    """Fold a further offending call in; False when it was already counted (a redelivery)."""
    pair = [call.event_time, call.event_id]
    events = aggregate["first_events"]
    if call.event_id and pair in events:
        return False
    aggregate["count"] += 1
    if call.event_time < aggregate["first_ms"] or (
        call.event_time == aggregate["first_ms"] and call.event_id < events[0][1]
    ):
        # An earlier event seen late: the finding describes the first offence.
        aggregate.update(first_ms=call.event_time, remote_ip=call.source_ip, api=call.event_name,
                         service=call.service_name, user_agent=call.user_agent,
                         region=call.region)
    aggregate["last_ms"] = max(aggregate["last_ms"], call.event_time)
    if int(verdict.severity or 0) > aggregate["severity"]:
        aggregate["severity"] = int(verdict.severity or 0)
    events.append(pair)
    events.sort()
    del events[FIRST_EVENTS_KEPT:]
    _count_api_call(aggregate, call)
    return True


def suppressed_by(aggregate: dict[str, Any], rules: tuple[SuppressionRule, ...]) -> str | None:
    for rule in rules:
        if rule.finding_type is not None and rule.finding_type != aggregate["type"]:
            continue
        if rule.remote_account is not None and rule.remote_account != aggregate["remote_account"]:
            continue
        if rule.remote_network is not None and not _in_network(aggregate["remote_ip"],
                                                                rule.remote_network):
            continue
        if rule.role is not None and rule.role != aggregate["role"]:
            continue
        if rule.instance is not None and rule.instance != aggregate["instance"]:
            continue
        return rule.name
    return None


def _in_network(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    ip = parse_ip(address)
    return ip is not None and ip in network


def render(aggregate: dict[str, Any], config: DetectionConfig,
           enrich: IpEnricher | None = None) -> dict[str, Any]:
    """The finding as consumers see it: GuardDuty's shape plus an ``evidence`` section."""
    remote_ip = aggregate["remote_ip"]
    ip = parse_ip(remote_ip)
    geo = enrich(remote_ip) if enrich is not None and ip is not None else None
    country_code, country_name, asn, asn_org = geo or (None, None, None, None)
    ip_details = {
        "ipAddressV4": remote_ip if ip is not None and ip.version == 4 else None,
        "ipAddressV6": remote_ip if ip is not None and ip.version == 6 else None,
        "country": {"countryCode": country_code, "countryName": country_name},
        "organization": {"asn": str(asn) if asn is not None else None, "asnOrg": asn_org},
    }
    remote_account = None
    if aggregate["remote_account"] is not None:
        remote_account = {"accountId": aggregate["remote_account"],
                          "affiliated": bool(aggregate["affiliated"])}
    suppression = suppressed_by(aggregate, config.suppression_rules)
    finding_type = aggregate["type"]
    instance = aggregate["instance"]
    where = (f"the remote account {aggregate['remote_account']}" if remote_account
             else f"the address {remote_ip}")
    chain = aggregate.get("derived_from")
    made = (f"Credentials created exclusively for the EC2 instance {instance} through its "
            f"instance role {aggregate['role']}")
    if chain:
        made = (f"Credentials of the role {aggregate['role']}, minted with the EC2 instance "
                f"{instance}'s credentials ({len(chain)} hop(s) from its instance key),")
    rendered = {
        "schemaVersion": SCHEMA_VERSION,
        "id": aggregate["id"],
        "type": finding_type,
        "severity": aggregate["severity"],
        "title": TYPES[finding_type].title.format(instance=instance),
        "description": (
            f"{made} were used from {where} "
            f"({aggregate['count']} call(s), first {aggregate['api']} on "
            f"{aggregate['service']}); rule: {aggregate['rule']}."
        ),
        "accountId": aggregate["account"],
        "region": aggregate["region"],
        "partition": "aws",
        "createdAt": format_time(aggregate["first_ms"]),
        "updatedAt": format_time(aggregate["last_ms"]),
        "resource": {
            "resourceType": "AccessKey",
            "accessKeyDetails": {
                "accessKeyId": aggregate["access_key"],
                "principalId": aggregate["principal_id"],
                "userName": aggregate["role"],
                "userType": "AssumedRole",
            },
            "instanceDetails": {"instanceId": instance},
        },
        "service": {
            "serviceName": "exfilguard",
            "action": {
                "actionType": "AWS_API_CALL",
                "awsApiCallAction": {
                    "api": aggregate["api"],
                    "serviceName": aggregate["service"],
                    "callerType": "Remote Account" if remote_account else "Remote IP",
                    "userAgent": {"fullUserAgent": aggregate["user_agent"]},
                    "remoteIpDetails": ip_details,
                    "remoteAccountDetails": remote_account,
                },
            },
            "count": aggregate["count"],
            "eventFirstSeen": format_time(aggregate["first_ms"]),
            "eventLastSeen": format_time(aggregate["last_ms"]),
            "archived": suppression is not None,
            "resourceRole": "TARGET",
            # Wall-clock time the stream first emitted it: stamped at the edge, never here.
            "additionalInfo": {"detectedAt": None, "apiCalls": api_calls(aggregate)},
        },
        "evidence": {
            "rule": aggregate["rule"],
            "issuanceEventId": (aggregate["issuance"] or {}).get("event_id"),
            "issuanceTime": (format_time(aggregate["issuance"]["time"])
                             if aggregate["issuance"] else None),
            "instanceKnownAddresses": aggregate["known_addresses"],
            "firstEventIds": [event_id for _, event_id in aggregate["first_events"]],
            "ec2RoleDelivery": aggregate["delivery"],
            "imdsV1": aggregate["delivery"] == "1.0",
            "suppressedBy": suppression,
        },
    }
    if chain:
        # Only on a derived key's finding: the parents from the nearest to the instance key,
        # each with the event that minted the next key (AssumeRole, or GetSigninToken).
        rendered["evidence"]["derivedFrom"] = [{"accessKeyId": key, "eventId": event_id}
                                               for key, event_id in chain]
    if aggregate.get("vpc_endpoint"):
        # Only where the endpoint decided: the endpoint that is none of the owner's.
        rendered["evidence"]["vpcEndpointId"] = aggregate["vpc_endpoint"]
    return rendered
