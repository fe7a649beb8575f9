"""The detection rules, one module each, evaluated in their declared ``order``: the first that
decides a call wins. A new rule is one module here (with ``RULE = Rule(...)``) plus its scenario
folders in ``tests/scenarios/``; ``tests/unit/test_rules.py`` checks both."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from streams.core.awsranges import AwsIpRanges
from streams.core.finding_types import INSIDE_AWS, Severity
from streams.core.prefixes import parse_ip
from streams.core.settings import DetectionConfig

if TYPE_CHECKING:  # records imports the record rule from here: no import cycle at run time
    from streams.core.records import ApiCall


@dataclass(frozen=True, slots=True)
class Verdict:
    """``finding_type`` None means no finding; ``reason`` says which rule decided, always."""

    reason: str
    finding_type: str | None = None
    severity: Severity | None = None
    remote_account: str | None = None
    affiliated: bool | None = None
    learn_address: bool = False  # the address becomes one of the instance's own

    @property
    def is_finding(self) -> bool:
        return self.finding_type is not None


def no_finding(reason: str, learn_address: bool = False) -> Verdict:
    return Verdict(reason=reason, learn_address=learn_address)


def inside(config: DetectionConfig, remote_account: str | None, reason: str) -> Verdict:
    """InsideAWS: Medium for an associated account, High for a stranger or an unknown one."""
    if remote_account is not None and config.is_associated(remote_account):
        return Verdict(reason, INSIDE_AWS, Severity.MEDIUM, remote_account, True)
    return Verdict(reason, INSIDE_AWS, Severity.HIGH, remote_account,
                   False if remote_account is not None else None)


@dataclass(frozen=True, slots=True)
class Addresses:
    """What is known of where the owner's instance calls from, beyond the config."""

    instance_addresses: frozenset[str]  # learned from the instance's own calls and EIPs
    learned_account: str | None  # the account whose CloudTrail shows it holds this address
    # Proven the instance's by CloudTrail (RunInstances, an elastic IP associated with it).
    proven: frozenset[str] = frozenset()
    # VPC endpoints the instance's calls showed its owner's (vpcEndpointAccountId = owner).
    endpoints: frozenset[str] = frozenset()
    # Elastic IPs the instance had from its account, which the account released since.
    released: frozenset[str] = frozenset()


class Call:
    """One call being judged, with what the rules look up about it computed once."""

    def __init__(self, call: ApiCall, owner: str, config: DetectionConfig, aws: AwsIpRanges,
                 known: Addresses) -> None:
        self.call = call
        self.owner = owner
        self.config = config
        self.aws = aws
        self.known = known

    @cached_property
    def ip(self) -> Any:
        return parse_ip(self.call.source_ip)

    @cached_property
    def in_aws(self) -> bool:
        return self.aws.lookup(self.ip) is not None

    @property
    def owner_declared(self) -> bool:
        return self.owner in self.config.account_networks

    @cached_property
    def learned_account(self) -> str | None:
        """The account CloudTrail showed holding the address; the owner's declared networks
        are authoritative, so stale learning of the owner's own is set aside."""
        learned = self.known.learned_account
        if learned == self.owner and self.owner_declared:
            return None
        return learned

    def learned(self) -> Verdict:
        account = self.learned_account
        if account == self.owner:
            return no_finding("own-learned-address", learn_address=True)
        return inside(self.config, account, "learned-address-of-other-account")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    doc: str  # one line, what README's rules say
    order: int  # evaluated in ascending order; gaps leave room for new rules
    decide: Callable[[Call], Verdict | None] | None  # None: a record rule (see ``stage``)
    scenarios: tuple[str, ...]  # folders in tests/scenarios/ that show it
    stage: str = "call"  # "record": decides which records are instance calls at all


@cache
def all_rules() -> tuple[Rule, ...]:
    """Every rule module's ``RULE``, in declared order (found on first use)."""
    found = [importlib.import_module(f"{__name__}.{module.name}").RULE
             for module in pkgutil.iter_modules(__path__)]
    return tuple(sorted(found, key=lambda rule: rule.order))


@cache
def call_rules() -> tuple[Rule, ...]:
    return tuple(rule for rule in all_rules() if rule.stage == "call")


def classify(call: ApiCall, owner: str, config: DetectionConfig, aws: AwsIpRanges,
             known: Addresses) -> Verdict:
    judged = Call(call, owner, config, aws, known)
    for rule in call_rules():
        verdict = rule.decide(judged)
        if verdict is not None:
            return verdict
    raise AssertionError("the last rule decides every call")  # aws-address always returns
