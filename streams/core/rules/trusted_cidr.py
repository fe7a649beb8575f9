"""Trusted networks (``trusted_ip_cidrs``: corporate egress, VPNs): no finding."""

from __future__ import annotations

from streams.core.rules import Call, Rule, Verdict, no_finding


def decide(judged: Call) -> Verdict | None:
    if judged.config.trusted.lookup(judged.ip) is not None:
        return no_finding("trusted-cidr")
    return None


RULE = Rule(name="trusted-cidr", doc="a call from trusted_ip_cidrs: no finding", order=30,
            decide=decide, scenarios=("corporate-egress-trusted-cidr",))
