"""A finding in the AWS Security Finding Format (ASFF, SchemaVersion 2018-10-08), as Security Hub
imports it from a custom integration: the default product of the finding's own account."""

from __future__ import annotations

from typing import Any

from streams.notify.notes import AUTHOR, note_text, response_note

SCHEMA_VERSION = "2018-10-08"
GENERATOR_ID = "exfilguard"
# Security Hub's type taxonomy is namespace/category/classifier; a stolen instance key used
# elsewhere is ATT&CK's credential access (T1552.005, the cloud instance metadata API).
TYPE_PREFIX = "TTPs/Credential Access/"
SEVERITY_LABELS = {8: "HIGH", 5: "MEDIUM", 2: "LOW"}
# ASFF's documented limits on these strings; a longer one is refused as InvalidInput.
TITLE_MAX, DESCRIPTION_MAX = 256, 1024
NOTE_MAX, PRODUCT_FIELD_MAX = 512, 2048


def product_arn(region: str, account_id: str, partition: str = "aws") -> str:
    """The ARN of an account's default product: what a custom integration imports under."""
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def asff_type(finding_type: str) -> str:
    # A classifier may not hold "/", GuardDuty's separator: Security Hub writes it as "-".
    return TYPE_PREFIX + finding_type.replace("/", "-")


def severity_label(severity: int) -> str:
    return SEVERITY_LABELS.get(severity, "HIGH" if severity >= 7 else "MEDIUM")


def _remote_ip_details(ip: dict[str, Any]) -> dict[str, Any] | None:
    if not ip.get("ipAddressV4"):
        return None  # RemoteIpDetails has an IPv4 field only: IPv6 goes to Network.SourceIpV6
    details: dict[str, Any] = {"IpAddressV4": ip["ipAddressV4"]}
    country = {k: v for k, v in (("CountryCode", (ip.get("country") or {}).get("countryCode")),
                                 ("CountryName", (ip.get("country") or {}).get("countryName")))
               if v}
    org = ip.get("organization") or {}
    organization = {k: v for k, v in (("Asn", org.get("asn")), ("AsnOrg", org.get("asnOrg")))
                    if v is not None}
    if country:
        details["Country"] = country
    if organization:
        details["Organization"] = organization
    return details


def _response_fields(note: dict[str, Any]) -> dict[str, str]:
    """The note's every field in ProductFields, which a re-import does update (Note does not)."""
    return {f"exfilguard/Response/{key[0].upper()}{key[1:]}": str(value)[:PRODUCT_FIELD_MAX]
            for key, value in note.items() if value is not None and value != ""}


def to_asff(finding: dict[str, Any], region: str | None = None) -> dict[str, Any]:
    """One exfilguard finding as one ASFF finding; ``region`` is Security Hub's (default: the
    finding's). Same id, so a re-import updates the finding instead of adding one."""
    account = finding["accountId"]
    partition = finding.get("partition") or "aws"
    region = region or finding["region"]
    key = finding["resource"]["accessKeyDetails"]
    instance_id = finding["resource"]["instanceDetails"]["instanceId"]
    service = finding["service"]
    call = service["action"]["awsApiCallAction"]
    ip = call.get("remoteIpDetails") or {}
    remote_account = (call.get("remoteAccountDetails") or {}).get("accountId")
    label = severity_label(finding["severity"])
    types = [asff_type(finding["type"])]
    action: dict[str, Any] = {"Api": call["api"], "ServiceName": call["serviceName"],
                              "CallerType": call["callerType"],
                              "FirstSeen": service["eventFirstSeen"],
                              "LastSeen": service["eventLastSeen"]}
    remote = _remote_ip_details(ip)
    if remote:
        action["RemoteIpDetails"] = remote
    network: dict[str, Any] = {"Direction": "IN"}
    if ip.get("ipAddressV4"):
        network["SourceIpV4"] = ip["ipAddressV4"]
    if ip.get("ipAddressV6"):
        network["SourceIpV6"] = ip["ipAddressV6"]
    product_fields = {
        "exfilguard/FindingType": finding["type"],
        "exfilguard/Rule": (finding.get("evidence") or {}).get("rule") or "",
        "exfilguard/Count": str(service["count"]),
        "exfilguard/RemoteIpV6": ip.get("ipAddressV6") or "",
        "exfilguard/RemoteAccountId": remote_account or "",
        "exfilguard/UserAgent": (call.get("userAgent") or {}).get("fullUserAgent", "")[:2048],
    }
    asff: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding["id"],
        "ProductArn": product_arn(region, account, partition),
        "GeneratorId": GENERATOR_ID,
        "AwsAccountId": account,
        "Region": region,
        "CompanyName": "exfilguard",
        "ProductName": "exfilguard",
        "Types": types,
        "CreatedAt": finding["createdAt"],
        "UpdatedAt": finding["updatedAt"],
        "FirstObservedAt": service["eventFirstSeen"],
        "LastObservedAt": service["eventLastSeen"],
        "Severity": {"Label": label, "Original": str(finding["severity"])},
        "FindingProviderFields": {
            "Severity": {"Label": label, "Original": str(finding["severity"])},
            "Types": types,
        },
        "Title": finding["title"][:TITLE_MAX],
        "Description": finding["description"][:DESCRIPTION_MAX],
        "ProductFields": {k: v for k, v in product_fields.items() if v},
        "Resources": [
            {"Type": "AwsIamAccessKey", "Id": key["accessKeyId"], "Partition": partition,
             "Region": finding["region"],
             "Details": {"AwsIamAccessKey": {
                 "PrincipalId": key["principalId"], "PrincipalType": key["userType"],
                 "PrincipalName": key["userName"],
                 "SessionContext": {"SessionIssuer": {
                     "Type": "Role", "AccountId": account, "UserName": key["userName"],
                     "Arn": f"arn:{partition}:iam::{account}:role/{key['userName']}"}}}}},
            {"Type": "AwsEc2Instance",
             "Id": f"arn:{partition}:ec2:{finding['region']}:{account}:instance/{instance_id}",
             "Partition": partition, "Region": finding["region"]},
        ],
        "Network": network,
        "Action": {"ActionType": "AWS_API_CALL", "AwsApiCallAction": action},
        # Suppressed by a rule: imported for the record, not for triage.
        "Workflow": {"Status": "SUPPRESSED" if service.get("archived") else "NEW"},
        "RecordState": "ACTIVE",
    }
    note = response_note(finding)
    if note:
        asff["ProductFields"].update(_response_fields(note))
        # Security Hub keeps the Note of a finding's first import: a later import's is ignored
        # (BatchUpdateFindings is the customer's way to change it), so ProductFields carry it too.
        asff["Note"] = {"Text": note_text(note)[:NOTE_MAX], "UpdatedBy": AUTHOR,
                        "UpdatedAt": note.get("tokenIssuedBefore") or finding["updatedAt"]}
    return asff
