"""The finding types, each declared once: GuardDuty's type string, its short name, title and
default severity. Findings, the Avro schema's doc, backtest labels and README all read them here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    """GuardDuty's severity numbers (ordered: a higher value is worse)."""

    MEDIUM = 5
    HIGH = 8


@dataclass(frozen=True, slots=True)
class FindingType:
    name: str  # GuardDuty's type, what playbooks match on
    title: str  # ``{instance}`` is the instance id
    severity: Severity  # the default; InsideAWS is Medium for an associated account

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


OUTSIDE = FindingType(
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
    "Credentials for the EC2 instance {instance} were used from an external IP address.",
    Severity.HIGH)
INSIDE = FindingType(
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS",
    "Credentials for the EC2 instance {instance} were used from a remote AWS account.",
    Severity.HIGH)

TYPES: dict[str, FindingType] = {t.name: t for t in (OUTSIDE, INSIDE)}
OUTSIDE_AWS = OUTSIDE.name
INSIDE_AWS = INSIDE.name
FINDING_TYPES = tuple(TYPES)
SHORT_TYPES = {t.short: t.name for t in TYPES.values()}
