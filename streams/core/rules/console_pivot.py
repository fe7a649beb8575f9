"""Console pivots: ``GetSigninToken`` signed with an instance's key, then ``ConsoleLogin`` by the
same session ARN: the keys the console then signs with under that ARN (EC2 never delivered
them) are derived from the instance key, for the console session's 12 hours."""

from __future__ import annotations

from streams.core.rules import Rule

RULE = Rule(
    name="console-pivot",
    doc="a console session opened with an instance's key: its keys are the instance's",
    order=12, decide=None, stage="record", scenarios=("console-pivot",))
