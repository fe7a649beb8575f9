"""``exfilguard accounts``: the organisation's accounts as the config's ``associated_accounts``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from streams.aws.organizations import client_config, guardduty_accounts, organization_accounts
from streams.cli.common import note
from streams.errors import UserError

SOURCES = {"organizations": "ACTIVE in AWS Organizations",
           "guardduty": "GuardDuty's administrator and Enabled members"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "accounts", help="list the organisation's accounts as associated_accounts (YAML)",
        description="List the accounts of the organisation (AWS Organizations, from the "
                    "management account or a delegated administrator) or of GuardDuty (the "
                    "administrator and its Enabled members) and print them as the config's "
                    "associated_accounts, to paste into or merge with the config.")
    parser.add_argument("--source", choices=sorted(SOURCES), default="organizations",
                        help="where the accounts come from (default: organizations)")
    parser.add_argument("--region", metavar="REGION",
                        help="GuardDuty's region, or Organizations' endpoint (default: the AWS "
                             "config's region)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the YAML here, not stdout")
    parser.set_defaults(run=run)


def new_session(**credentials: str) -> Any:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.Session(**credentials)
    except BotoCoreError as exc:  # AWS_PROFILE naming a profile that is not there, say
        raise UserError(f"AWS session: {exc}") from None


def aws_client(session: Any, service: str, region: str | None) -> Any:
    return session.client(service, region_name=region, config=client_config())


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def quoted(value: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is YAML's)."""
    return json.dumps(value)


def yaml_list(items: Iterable[str], indent: str) -> list[str]:
    lines = [f"{indent}- {quoted(item)}" for item in items]
    return lines or [f"{indent}[]"]


def render_accounts(accounts: list[str], source: str) -> str:
    lines = [f"# {count(len(accounts), 'account')}, {SOURCES[source]} "
             f"(exfilguard accounts, {timestamp()})", "associated_accounts:"]
    return "\n".join(lines + yaml_list(accounts, "  ")) + "\n"


def write_output(text: str, path: str | None) -> None:
    if not path:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise UserError(f"--output {path}: cannot write ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    session = new_session()
    region = args.region or session.region_name
    if args.source == "guardduty":
        if not region:
            raise UserError("guardduty: no region; give --region or set AWS_REGION")
        accounts = guardduty_accounts(aws_client(session, "guardduty", region))
    else:
        accounts = organization_accounts(aws_client(session, "organizations",
                                                    region or "us-east-1"))
    write_output(render_accounts(accounts, args.source), args.output)
    note("accounts", f"{count(len(accounts), 'account')} from {args.source}")
    return 0
