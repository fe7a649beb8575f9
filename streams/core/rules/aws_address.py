"""An AWS address that is not the owner's: declared networks are authoritative; otherwise the
instance's first AWS address is learned as its own, elastic IPs and NAT gateways in CloudTrail
become their account's, and another AWS address → InsideAWS High. Decides every call left."""

from __future__ import annotations

from streams.core.rules import Call, Rule, Verdict, inside, no_finding


def decide(judged: Call) -> Verdict:
    if judged.learned_account is not None:
        return judged.learned()
    if judged.owner_declared:
        # Declared networks are authoritative: an AWS address outside them is someone else's.
        return inside(judged.config, None, "aws-address-outside-declared-networks")
    addresses = judged.known.instance_addresses
    if not addresses:
        return no_finding("first-aws-address-learned", learn_address=True)
    if judged.call.source_ip in addresses:
        return no_finding("known-instance-address")
    return inside(judged.config, None, "aws-address-not-the-instances")


RULE = Rule(name="aws-address", doc="an AWS address that is not the instance's: InsideAWS High",
            order=70, decide=decide,
            scenarios=("stop-start-relearn", "elastic-ip-association", "eip-of-other-account",
                       "nat-gateway-egress", "declared-owner-authoritative",
                       "declared-owner-ignores-learned-eip", "two-keys-one-instance"))
