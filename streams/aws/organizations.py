"""The organisation's accounts (AWS Organizations, or GuardDuty's members) for
``associated_accounts``; clients are built by the caller, and an API error is one ``UserError``
naming the permission or account to use."""

from __future__ import annotations

from typing import Any

from streams.errors import UserError

ACTIVE = "ACTIVE"
ENABLED = "enabled"  # GuardDuty's RelationshipStatus, compared case-insensitively


def client_config() -> Any:
    """Timeouts and retries for every client these commands build."""
    from botocore.config import Config

    return Config(connect_timeout=10, read_timeout=60,
                  retries={"mode": "standard", "max_attempts": 5})


def error_text(exc: Exception) -> str:
    """``Code: message`` of a botocore error, on one line."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        text = f"{code}: {message}" if code and message else code or message or str(exc)
    else:
        text = str(exc)
    return " ".join(text.split())


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""


def organization_accounts(client: Any) -> list[str]:
    """Ids of the organisation's ACTIVE accounts (the management account included), sorted."""
    from botocore.exceptions import BotoCoreError, ClientError

    ids: set[str] = set()
    try:
        for page in client.get_paginator("list_accounts").paginate():
            for account in page.get("Accounts", []):
                # State replaces Status (retired in 2026); either says ACTIVE for a live account.
                if (account.get("State") or account.get("Status")) == ACTIVE:
                    ids.add(account["Id"])
    except ClientError as exc:
        raise UserError(f"organizations list-accounts: {error_text(exc)} (run it with the "
                        "management account or a delegated administrator)") from None
    except BotoCoreError as exc:
        raise UserError(f"organizations list-accounts: {error_text(exc)}") from None
    return sorted(ids)


def detector_ids(client: Any) -> list[str]:
    ids: list[str] = []
    for page in client.get_paginator("list_detectors").paginate():
        ids.extend(page.get("DetectorIds", []))
    return ids


def enabled_members(client: Any, detector_id: str) -> set[str]:
    """The detector's members whose relationship is Enabled, and their administrator."""
    ids: set[str] = set()
    for page in client.get_paginator("list_members").paginate(DetectorId=detector_id,
                                                               OnlyAssociated="true"):
        for member in page.get("Members", []):
            if str(member.get("RelationshipStatus", "")).lower() == ENABLED:
                ids.add(member["AccountId"])
                administrator = member.get("AdministratorId") or member.get("MasterId")
                if administrator:
                    ids.add(administrator)
    return ids


def guardduty_accounts(client: Any) -> list[str]:
    """GuardDuty's administrator and its Enabled members in the client's region, sorted."""
    from botocore.exceptions import BotoCoreError, ClientError

    region = client.meta.region_name
    try:
        detectors = detector_ids(client)
        if not detectors:
            raise UserError(f"guardduty: no detector in {region} (give --region where GuardDuty "
                            "runs as the administrator)")
        ids: set[str] = set()
        for detector in detectors:
            ids |= enabled_members(client, detector)
    except ClientError as exc:
        raise UserError(f"guardduty list-members in {region}: {error_text(exc)} (run it with the "
                        "GuardDuty administrator account)") from None
    except BotoCoreError as exc:
        raise UserError(f"guardduty in {region}: {error_text(exc)}") from None
    if not ids:
        raise UserError(f"guardduty: the detector in {region} has no Enabled members (is this "
                        "the administrator account?)")
    return sorted(ids)
