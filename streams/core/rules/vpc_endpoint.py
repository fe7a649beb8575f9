"""Through a VPC endpoint: the endpoint's owner (``vpcEndpointAccountId``) is the account the call
came from. The owner's own: none; an associated account's: Medium; any other's: High. Owner not
named: none of the owner's known endpoints (declared or learned) → High, remote unknown."""

from __future__ import annotations

from streams.core.finding_types import INSIDE_AWS, Severity
from streams.core.rules import Call, Rule, Verdict, inside, no_finding


def decide(judged: Call) -> Verdict | None:
    call = judged.call
    if call.vpc_endpoint_id is None:
        return None
    endpoint_account = call.vpc_endpoint_account_id
    if endpoint_account is None:
        # Older records (and some services) name the endpoint but not its owner: the owner's
        # endpoints, declared or learned, decide; the private source address says nothing (the
        # thief picks the VPC range).
        owners = judged.config.account_vpc_endpoints.get(judged.owner, frozenset())
        known = owners | judged.known.endpoints
        if call.vpc_endpoint_id in known:
            return no_finding("own-vpc-endpoint")
        if known:
            return Verdict("vpc-endpoint-not-the-owners", INSIDE_AWS, Severity.HIGH, None, None)
        return no_finding("vpc-endpoint-owner-unknown")
    if endpoint_account == judged.owner:
        return no_finding("own-vpc-endpoint")
    return inside(judged.config, endpoint_account, "foreign-vpc-endpoint")


RULE = Rule(name="vpc-endpoint", doc="the endpoint's owner account decides", order=40,
            decide=decide, scenarios=("own-vpc-endpoint", "foreign-vpc-endpoint-stranger",
                                      "associated-account-vpc-endpoint",
                                      "unknown-endpoint-declared", "unknown-endpoint-learned",
                                      "unknown-endpoint-nothing-known"))
