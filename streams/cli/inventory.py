"""``exfilguard inventory``: the accounts' addresses and VPC networks as ``account_networks``,
their VPC endpoints as ``account_vpc_endpoints``."""

from __future__ import annotations

import argparse
import re
from typing import Any

from streams.aws.inventory import (
    Inventory,
    assume_role,
    caller_account,
    collect,
    enabled_regions,
    failure,
    minimal,
    shared_networks,
)
from streams.aws.organizations import error_text, organization_accounts
from streams.cli import accounts as edge
from streams.cli.common import note
from streams.core.settings import ACCOUNT_ID
from streams.errors import UserError

REGION = re.compile(r"^[a-z]{2}(-[a-z0-9]+)+-\d+$")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inventory", help="collect the accounts' addresses and VPC CIDRs as account_networks",
        description="Collect, per account and region, instances' public IPv4 and IPv6 addresses, "
                    "elastic IPs, NAT gateways' addresses and VPCs' IPv4 and IPv6 CIDR blocks "
                    "(where VPC endpoints' addresses lie) and print them as the config's "
                    "account_networks, and each account's VPC endpoint ids as "
                    "account_vpc_endpoints. The current account always; others through a role "
                    "assumed in each. An account or region that fails is reported and skipped.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--regions", metavar="R1,R2",
                       help="regions to read (default: the AWS config's region)")
    where.add_argument("--all-regions", action="store_true",
                       help="every region each account has enabled")
    parser.add_argument("--role-name", metavar="NAME",
                        help="role to assume in the other accounts "
                             "(arn:aws:iam::ACCOUNT:role/NAME)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--accounts", metavar="A,B", help="other accounts to read (needs "
                       "--role-name)")
    which.add_argument("--accounts-from-organizations", action="store_true",
                       help="every ACTIVE account of the organisation (needs --role-name)")
    parser.add_argument("--external-id", metavar="ID", help="ExternalId for assuming the role")
    parser.add_argument("--workers", type=int, default=8, metavar="N",
                        help="regions read at once (default: 8)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the YAML here, not stdout")
    parser.set_defaults(run=run)


def split(value: str | None) -> list[str]:
    return sorted({item.strip() for item in (value or "").split(",") if item.strip()})


def explicit_accounts(args: argparse.Namespace) -> list[str]:
    accounts = split(args.accounts)
    for account in accounts:
        if not ACCOUNT_ID.fullmatch(account):
            raise UserError(f"--accounts: {account!r} is not a 12-digit account id")
    if args.accounts is not None and not accounts:
        raise UserError("--accounts: no account ids given")
    return accounts


def explicit_regions(args: argparse.Namespace, session: Any) -> list[str] | None:
    """The regions to read, or None for every enabled region of each account."""
    if args.all_regions:
        return None
    regions = split(args.regions) if args.regions is not None else (
        [session.region_name] if session.region_name else [])
    if not regions:
        raise UserError("no region: give --regions or --all-regions, or set AWS_REGION")
    for region in regions:
        if not REGION.match(region):
            raise UserError(f"--regions: {region!r} is not a region name such as eu-west-1")
    return regions


def check_args(args: argparse.Namespace) -> None:
    others = args.accounts is not None or args.accounts_from_organizations
    if others and not args.role_name:
        raise UserError("--accounts and --accounts-from-organizations need --role-name")
    if args.role_name and not others:
        raise UserError("--role-name needs --accounts or --accounts-from-organizations")
    if args.workers < 1:
        raise UserError("--workers: give a whole number ≥ 1")


def current_account(sts: Any) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return caller_account(sts)
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"sts get-caller-identity: {error_text(exc)} (are AWS credentials "
                        "set?)") from None


def sessions_for(args: argparse.Namespace, base: Any, sts: Any, me: str, home: str,
                 inventory: Inventory) -> dict[str, Any]:
    """A session per account: the current one's, and one per role assumed."""
    from botocore.exceptions import BotoCoreError, ClientError

    others = explicit_accounts(args)
    if args.accounts_from_organizations:
        others = organization_accounts(edge.aws_client(base, "organizations", home))
    sessions = {me: base}
    for account in others:
        if account == me:
            continue
        try:
            credentials = assume_role(sts, account, args.role_name, args.external_id)
        except (ClientError, BotoCoreError) as exc:
            inventory.failures.append(failure(account, None, exc))
            continue
        sessions[account] = edge.new_session(region_name=home, **credentials)
    return sessions


def targets_for(sessions: dict[str, Any], regions: list[str] | None, home: str,
                inventory: Inventory) -> list[tuple[str, str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    targets = []
    for account, session in sessions.items():
        account_regions = regions
        if account_regions is None:
            try:
                account_regions = enabled_regions(edge.aws_client(session, "ec2", home))
            except (ClientError, BotoCoreError) as exc:
                inventory.failures.append(failure(account, None, exc))
                continue
        targets += [(account, r, edge.aws_client(session, "ec2", r)) for r in account_regions]
    return targets


def render(inventory: Inventory, regions: list[str] | None) -> str:
    where = ", ".join(regions) if regions else "every enabled region"
    lines = [f"# {edge.count(len(inventory.networks), 'account')}; {where} "
             f"(exfilguard inventory, {edge.timestamp()})",
             "# Instances' public addresses change when they stop and start unless elastic: "
             "re-run it.",
             "account_networks:"]
    for account in sorted(inventory.networks):
        missing = inventory.incomplete(account)
        if missing:
            lines.append(f"  # incomplete, not read: {', '.join(f.region or '?' for f in missing)}"
                         " (declared networks are authoritative: complete them)")
        lines.append(f"  {edge.quoted(account)}:")
        lines += edge.yaml_list(minimal(inventory.networks[account]), "    ")
    endpoints = inventory.complete_endpoints()
    if endpoints:
        lines += [f"# VPC endpoints of each account in {where}: a call through another endpoint "
                  "is InsideAWS High; re-run it when endpoints are added.",
                  "account_vpc_endpoints:"]
        for account in sorted(endpoints):
            lines.append(f"  {edge.quoted(account)}:")
            lines += edge.yaml_list(sorted(endpoints[account]), "    ")
    return "\n".join(lines) + "\n"


def drop_empty(inventory: Inventory) -> None:
    for account in [a for a, cidrs in inventory.networks.items() if not cidrs]:
        del inventory.networks[account]
        note("inventory", f"{account}: no addresses or networks found; left out (an empty list "
             "would make every AWS address it calls from a finding)")


def run(args: argparse.Namespace) -> int:
    check_args(args)
    base = edge.new_session()
    regions = explicit_regions(args, base)
    home = base.region_name or (regions[0] if regions else "us-east-1")
    sts = edge.aws_client(base, "sts", home)
    me = current_account(sts)
    inventory = Inventory()
    sessions = sessions_for(args, base, sts, me, home, inventory)
    collect(targets_for(sessions, regions, home, inventory), args.workers, inventory)
    for item in inventory.failures:
        note("inventory", item.line())
    for item in inventory.endpoint_failures:
        note("inventory", f"{item.account} {item.region}: VPC endpoints: {item.text}; "
             f"account_vpc_endpoints left out for {item.account} (a partial list would make "
             "calls through the others findings)")
    drop_empty(inventory)
    if not inventory.networks:
        raise UserError("nothing collected from any account or region (see above)", exit_code=1)
    shared = shared_networks(inventory.networks)
    if shared:
        first = min(shared)
        note("inventory", f"{edge.count(len(shared), 'network')} under several accounts ({first} "
             f"under {len(shared[first])}): the config keeps one owner for each")
    edge.write_output(render(inventory, regions), args.output)
    skipped = f", {len(inventory.failures)} skipped" if inventory.failures else ""
    total = sum(len(minimal(c)) for c in inventory.networks.values())
    note("inventory", f"{edge.count(total, 'network')} for "
         f"{edge.count(len(inventory.networks), 'account')}{skipped}")
    return 0
