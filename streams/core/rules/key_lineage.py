"""Key lineage: a key an ``sts:AssumeRole`` minted with an instance's key (or with a key derived
from one, up to ``MAX_DERIVATION_DEPTH`` hops) is the instance's too, whatever its role and
session name; its calls go through the call rules as the instance key's would."""

from __future__ import annotations

from streams.core.rules import Rule

RULE = Rule(
    name="key-lineage",
    doc="keys minted with an instance's key are the instance's: judged by the same rules",
    order=11, decide=None, stage="record",
    scenarios=("lineage-one-hop", "lineage-two-hops", "lineage-cross-account-duplicate",
               "lineage-benign-chain-then-stolen-child"))
