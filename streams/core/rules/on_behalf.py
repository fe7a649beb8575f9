"""AWS services on the principal's behalf (``invokedBy``, a ``*.amazonaws.com`` source, ``AWS
Internal``): the source is the service, not a thief. No finding."""

from __future__ import annotations

from streams.core.records import is_on_behalf
from streams.core.rules import Call, Rule, Verdict, no_finding


def decide(judged: Call) -> Verdict | None:
    if is_on_behalf(judged.call):
        return no_finding("aws-service-on-behalf")
    if judged.ip is None:  # records.normalise rejects these; kept as a guard for hand-built calls
        return no_finding("unparseable-source")
    return None


RULE = Rule(name="aws-service-on-behalf", doc="an AWS service acting for the principal: no finding",
            order=20, decide=decide, scenarios=("service-on-behalf",))
