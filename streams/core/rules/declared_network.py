"""Networks the config declares for accounts (``account_networks``): the owner's: none; an
associated account's: InsideAWS Medium; another declared account's: InsideAWS High."""

from __future__ import annotations

from streams.core.rules import Call, Rule, Verdict, inside, no_finding


def decide(judged: Call) -> Verdict | None:
    declared = judged.config.declared.lookup(judged.ip)
    if declared is None:
        return None
    if declared == judged.owner:
        return no_finding("own-declared-network")
    return inside(judged.config, declared, "declared-network-of-other-account")


RULE = Rule(name="declared-network", doc="the account whose declared network holds the address",
            order=50, decide=decide, scenarios=("declared-network-own",
                                                "declared-network-associated",
                                                "declared-network-stranger"))
