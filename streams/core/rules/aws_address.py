"""An AWS address that is not the owner's: declared networks are authoritative; addresses
CloudTrail proves the instance's are its own; otherwise its first AWS address of each family
(IPv4, IPv6) is learned (not when a public address of that family is proven), elastic IPs and
NAT gateways in CloudTrail become their account's until released, and another AWS address →
InsideAWS High. Decides every call left."""

from __future__ import annotations

from streams.core.prefixes import parse_ip
from streams.core.rules import Call, Rule, Verdict, inside, no_finding


def decide(judged: Call) -> Verdict:
    if judged.learned_account is not None:
        return judged.learned()
    if judged.owner_declared:
        # Declared networks are authoritative: an AWS address outside them is someone else's.
        return inside(judged.config, None, "aws-address-outside-declared-networks")
    source = judged.call.source_ip
    if source in judged.known.proven:
        return no_finding("proven-instance-address")
    addresses = judged.known.instance_addresses
    if source in addresses:
        return no_finding("known-instance-address")
    if source in judged.known.released:
        # An elastic IP its account gave back: whoever holds it now is not the instance, and
        # it is not learned as its own, even first.
        return inside(judged.config, None, "aws-address-released")
    if not addresses:
        if _proven_in_family(judged):
            # CloudTrail proved the instance's public address of this family: another AWS
            # address is not learned as its own, even first (the thief's box).
            return inside(judged.config, None, "aws-address-not-the-proven")
        return no_finding("first-aws-address-learned", learn_address=True)
    if not any(_family(a) == judged.ip.version for a in addresses) and not _proven_in_family(
            judged):
        # Learned once per address family: a dual-stack instance calls over IPv4 (its own, or
        # a NAT gateway's) and over IPv6 from its own address, one of each.
        return no_finding("first-aws-address-of-family-learned", learn_address=True)
    return inside(judged.config, None, "aws-address-not-the-instances")


def _family(address: str) -> int | None:
    ip = parse_ip(address)
    return ip.version if ip is not None else None


def _proven_in_family(judged: Call) -> bool:
    """A proven public address of the call's address family (an elastic IP, an IPv6)."""
    for address in judged.known.proven:
        ip = parse_ip(address)
        if ip is not None and ip.version == judged.ip.version and ip.is_global:
            return True
    return False


RULE = Rule(name="aws-address", doc="an AWS address that is not the instance's: InsideAWS High",
            order=70, decide=decide,
            scenarios=("stop-start-relearn", "elastic-ip-association", "eip-of-other-account",
                       "nat-gateway-egress", "declared-owner-authoritative",
                       "declared-owner-ignores-learned-eip", "two-keys-one-instance",
                       "proven-eip-thief-first", "proven-ipv6-with-nat-ipv4",
                       "key-rotation-keeps-address", "proven-ipv6-assigned-with-nat-ipv4",
                       "dual-stack-learned-per-family", "eip-released-reused-by-stranger",
                       "eip-released-moves-to-other-account", "nat-gateway-deleted"))
