"""Outside AWS: an address in neither AWS's ranges nor a declared network, not through an
endpoint → OutsideAWS High. A private address reaches CloudTrail only through a VPC endpoint, so
one without an endpoint is not proof of being inside."""

from __future__ import annotations

from streams.core.finding_types import OUTSIDE
from streams.core.rules import Call, Rule, Verdict


def decide(judged: Call) -> Verdict | None:
    if judged.in_aws:
        return None
    if judged.learned_account is not None:
        # CloudTrail showed an account allocating it (an EIP brought from outside AWS's list).
        return judged.learned()
    return Verdict("outside-aws", OUTSIDE.name, OUTSIDE.severity)


RULE = Rule(name="outside-aws", doc="an address outside AWS: OutsideAWS High", order=60,
            decide=decide, scenarios=("ipv6-outside", "private-address-without-endpoint",
                                      "many-calls-one-attacker"))
