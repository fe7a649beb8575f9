"""Instance credentials only: sessions named with an instance id, tied to an issuance or
carrying ``ec2RoleDelivery``; not the instance identity role, ECS, Lambda, IRSA, humans or users."""

from __future__ import annotations

import re

from streams.core.rules import Rule

# An instance id: i- then 8 or 17 hex digits. Any case: anonymised logs upper-case them.
INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$", re.IGNORECASE)
SESSION_ARN = re.compile(
    r"^arn:aws[a-z-]*:sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/(?P<session>[^/]+)$"
)
# The EC2 instance *identity* role is AWS's own, not the customer's role: not ours to judge.
IDENTITY_ROLE = "aws:ec2-instance"


def instance_session(arn: str) -> re.Match | None:
    """The assumed-role ARN's parts when its session is an instance's, else None."""
    match = SESSION_ARN.match(arn)
    if match is None or not INSTANCE_ID.match(match["session"]):
        return None
    if match["role"] == IDENTITY_ROLE:
        return None
    return match


RULE = Rule(
    name="instance-credentials-only",
    doc="sessions named with an instance id, tied to an issuance or carrying ec2RoleDelivery",
    order=10, decide=None, stage="record",
    scenarios=("non-instance-sessions", "uppercase-instance-id", "key-issued-before-job"))
