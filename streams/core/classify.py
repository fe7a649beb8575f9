"""Where a call came from, judged against the owner of the instance credentials.

The rules run in order and the first that decides wins (see ``classify``). Each returns a
``Verdict``: no finding, or a finding type with severity and the remote account where known.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from streams.core.awsranges import AwsIpRanges
from streams.core.prefixes import parse_ip
from streams.core.records import ApiCall, is_on_behalf
from streams.core.settings import INSIDE_AWS, OUTSIDE_AWS, DetectionConfig


class Severity(IntEnum):
    """GuardDuty's severity numbers for the two findings."""

    MEDIUM = 5
    HIGH = 8


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


def inside(config: DetectionConfig, owner: str, remote_account: str | None, reason: str) -> Verdict:
    """InsideAWS: Medium for an associated account, High for a stranger or an unknown one."""
    del owner
    if remote_account is not None and config.is_associated(remote_account):
        return Verdict(reason, INSIDE_AWS, Severity.MEDIUM, remote_account, True)
    return Verdict(reason, INSIDE_AWS, Severity.HIGH, remote_account,
                   False if remote_account is not None else None)


@dataclass(frozen=True, slots=True)
class Addresses:
    """What is known of where the owner's instance calls from, beyond the config."""

    instance_addresses: frozenset[str]  # learned from the instance's own calls and EIPs
    learned_account: str | None  # the account whose CloudTrail shows it holds this address


def classify(call: ApiCall, owner: str, config: DetectionConfig, aws: AwsIpRanges,
             known: Addresses) -> Verdict:
    # 2. An AWS service acting for the principal (invokedBy, a service name as source).
    if is_on_behalf(call):
        return no_finding("aws-service-on-behalf")
    source = call.source_ip
    ip = parse_ip(source)
    if ip is None:  # records.normalise rejects these; kept as a guard for hand-built calls
        return no_finding("unparseable-source")
    # 3. Corporate egress and other trusted networks.
    if config.trusted.lookup(ip) is not None:
        return no_finding("trusted-cidr")
    # 4. Through a VPC endpoint: the endpoint's owner is the account the call came from.
    if call.vpc_endpoint_id is not None:
        endpoint_account = call.vpc_endpoint_account_id
        if endpoint_account is None:
            # Older records name the endpoint but not its owner: nothing to judge by.
            return no_finding("vpc-endpoint-owner-unknown")
        if endpoint_account == owner:
            return no_finding("own-vpc-endpoint")
        return inside(config, owner, endpoint_account, "foreign-vpc-endpoint")
    # 5. Networks the config declares for accounts.
    declared = config.declared.lookup(ip)
    if declared is not None:
        if declared == owner:
            return no_finding("own-declared-network")
        return inside(config, owner, declared, "declared-network-of-other-account")
    in_aws = aws.lookup(ip) is not None
    owner_declared = owner in config.account_networks
    learned = known.learned_account
    if learned == owner and owner_declared:
        learned = None  # the owner's declared networks are authoritative; stale learning is not
    # 6. Outside AWS. A private address reaches CloudTrail only through a VPC endpoint, so one
    # without an endpoint is not proof of being inside.
    if not in_aws:
        if learned is not None:
            # CloudTrail showed an account allocating it (an EIP brought from outside AWS's list).
            return _learned(config, owner, learned)
        return Verdict("outside-aws", OUTSIDE_AWS, Severity.HIGH)
    # 7. An AWS address.
    if learned is not None:
        return _learned(config, owner, learned)
    if owner_declared:
        # Declared networks are authoritative: an AWS address outside them is someone else's.
        return inside(config, owner, None, "aws-address-outside-declared-networks")
    if not known.instance_addresses:
        return no_finding("first-aws-address-learned", learn_address=True)
    if source in known.instance_addresses:
        return no_finding("known-instance-address")
    return inside(config, owner, None, "aws-address-not-the-instances")


def _learned(config: DetectionConfig, owner: str, account: str) -> Verdict:
    if account == owner:
        return no_finding("own-learned-address", learn_address=True)
    return inside(config, owner, account, "learned-address-of-other-account")
