"""A finding as an OCSF Detection Finding (class 2004, category Findings, OCSF 1.8.0 with the
cloud profile), the shape Amazon Security Lake and SIEMs read. Times are the finding's event
times, so the same finding gives the same bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams import __version__
from streams.notify.notes import note_text, response_note

OCSF_VERSION = "1.8.0"
CLASS_UID, CATEGORY_UID = 2004, 2
ACTIVITIES = {1: "Create", 2: "Update"}
# GuardDuty's 8/5/2 bands to OCSF's severity_id (4 High, 3 Medium, 2 Low).
SEVERITIES = {8: (4, "High"), 5: (3, "Medium"), 2: (2, "Low")}
OBSERVABLE_IP, OBSERVABLE_CREDENTIAL, OBSERVABLE_RESOURCE = 2, 19, 10
ACCOUNT_AWS, ANALYTIC_RULE = 10, 1
# MITRE ATT&CK: the key came from the metadata service and is used as a valid cloud account.
ATTACKS = [
    {"technique": {"uid": "T1552.005", "name": "Cloud Instance Metadata API"},
     "tactic": {"uid": "TA0006", "name": "Credential Access"}},
    {"technique": {"uid": "T1078.004", "name": "Cloud Accounts"},
     "tactic": {"uid": "TA0001", "name": "Initial Access"}},
]


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def severity_of(severity: int) -> tuple[int, str]:
    return SEVERITIES.get(severity, (4, "High") if severity >= 7 else (3, "Medium"))


def _src_endpoint(ip: dict[str, Any]) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"ip": ip.get("ipAddressV4") or ip.get("ipAddressV6")}
    country = (ip.get("country") or {}).get("countryCode")
    if country:
        endpoint["location"] = {"country": country}
    org = ip.get("organization") or {}
    if org.get("asn") is not None or org.get("asnOrg"):
        endpoint["autonomous_system"] = {k: v for k, v in (("number", org.get("asn")),
                                                           ("name", org.get("asnOrg")))
                                         if v is not None}
    return {k: v for k, v in endpoint.items() if v is not None}


def to_ocsf(finding: dict[str, Any]) -> dict[str, Any]:
    """One exfilguard finding as one Detection Finding; ``finding_info.uid`` is the finding id,
    so a later version of it is an Update of the same finding (the first is a Create)."""
    service = finding["service"]
    call = service["action"]["awsApiCallAction"]
    ip = call.get("remoteIpDetails") or {}
    key = finding["resource"]["accessKeyDetails"]
    instance_id = finding["resource"]["instanceDetails"]["instanceId"]
    account, region = finding["accountId"], finding["region"]
    partition = finding.get("partition") or "aws"
    role_arn = f"arn:{partition}:iam::{account}:role/{key['userName']}"
    note = response_note(finding)
    # A note is written into a finding that exists already: an Update even at one call.
    activity = 1 if service["count"] == 1 and not note else 2
    severity_id, severity = severity_of(finding["severity"])
    archived = bool(service.get("archived"))
    remote_account = (call.get("remoteAccountDetails") or {}).get("accountId")
    actor = {
        "user": {"uid": key["principalId"], "name": key["userName"], "type": key["userType"],
                 "credential_uid": key["accessKeyId"],
                 "account": {"uid": account, "type": "AWS Account", "type_id": ACCOUNT_AWS}},
        "session": {"issuer": role_arn, "credential_uid": key["accessKeyId"]},
    }
    src = _src_endpoint(ip)
    observables = [
        {"type_id": OBSERVABLE_CREDENTIAL, "type": "User Credential ID",
         "name": "actor.user.credential_uid", "value": key["accessKeyId"]},
        {"type_id": OBSERVABLE_RESOURCE, "type": "Resource UID", "name": "resources.uid",
         "value": instance_id},
    ]
    if src.get("ip"):
        observables.insert(0, {"type_id": OBSERVABLE_IP, "type": "IP Address",
                               "name": "evidences.src_endpoint.ip", "value": src["ip"]})
    event: dict[str, Any] = {
        "activity_id": activity,
        "activity_name": ACTIVITIES[activity],
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + activity,
        "type_name": f"Detection Finding: {ACTIVITIES[activity]}",
        "severity_id": severity_id,
        "severity": severity,
        # Suppressed by a rule: kept for the record, as GuardDuty archives.
        "status_id": 3 if archived else 1,
        "status": "Suppressed" if archived else "New",
        "time": epoch_ms(finding["updatedAt"]),
        "start_time": epoch_ms(service["eventFirstSeen"]),
        "end_time": epoch_ms(service["eventLastSeen"]),
        "count": service["count"],
        "message": finding["title"],
        "metadata": {
            "version": OCSF_VERSION,
            "uid": finding["id"],
            "profiles": ["cloud"],
            "product": {"name": "exfilguard", "vendor_name": "exfilguard",
                        "version": __version__, "feature": {"name": "detection"}},
        },
        "cloud": {"provider": "AWS", "region": region, "cloud_partition": partition,
                  "account": {"uid": account, "type": "AWS Account", "type_id": ACCOUNT_AWS}},
        "finding_info": {
            "uid": finding["id"],
            "title": finding["title"],
            "desc": finding["description"],
            "types": [finding["type"]],
            "created_time": epoch_ms(finding["createdAt"]),
            "modified_time": epoch_ms(finding["updatedAt"]),
            "first_seen_time": epoch_ms(service["eventFirstSeen"]),
            "last_seen_time": epoch_ms(service["eventLastSeen"]),
            "analytic": {"type_id": ANALYTIC_RULE, "type": "Rule",
                         "name": (finding.get("evidence") or {}).get("rule") or "",
                         "uid": finding["type"]},
            "attacks": ATTACKS,
        },
        "api": {"operation": call["api"], "service": {"name": call["serviceName"]}},
        "evidences": [{
            "actor": actor,
            "api": {"operation": call["api"], "service": {"name": call["serviceName"]}},
            "src_endpoint": src,
        }],
        "resources": [
            {"type": "AWS::IAM::AccessKey", "uid": key["accessKeyId"], "region": region,
             "owner": {"uid": key["principalId"], "name": key["userName"]}},
            {"type": "AWS::EC2::Instance", "uid": instance_id, "region": region,
             "uid_alt": f"arn:{partition}:ec2:{region}:{account}:instance/{instance_id}"},
        ],
        "observables": observables,
        "remediation": {"desc": "Revoke the instance role's active sessions (`exfilguard "
                                f"respond {finding['id']}`), then find how the instance's "
                                "metadata service was reached (SSRF, RCE) and require IMDSv2."},
        "unmapped": {
            "remote_account_id": remote_account,
            "user_agent": (call.get("userAgent") or {}).get("fullUserAgent"),
            "evidence": finding.get("evidence"),
        },
    }
    if note:
        # OCSF's comment is the finding's note (where BatchUpdateFindingsV2 writes its Comment);
        # the note's fields, which no OCSF attribute holds, go to unmapped.
        event["comment"] = note_text(note)
        event["unmapped"]["response"] = note
        if note.get("applied"):
            event["remediation"] = {"desc": (
                f"Done by exfilguard respond: sessions of role {note['role']} issued before "
                f"{note['tokenIssuedBefore']} are denied (inline policy {note['policyName']}). "
                "Left to do: find how the instance's metadata service was reached (SSRF, RCE) "
                "and require IMDSv2.")}
    return event
