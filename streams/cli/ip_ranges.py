"""``exfilguard ip-ranges update|show``: refresh AWS's ip-ranges.json, or say which one is used."""

from __future__ import annotations

import argparse
from pathlib import Path

from streams.aws.ipranges import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_URL,
    age_text,
    check,
    current_info,
    download,
    read_info,
    snapshot_age_seconds,
    snapshot_path,
    write_atomically,
)
from streams.cli.common import add_config_option, loaded_config, note
from streams.core.awsranges import BadIpRanges
from streams.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ip-ranges", help="update or show AWS's ip-ranges.json",
        description="AWS's published address ranges, which tell AWS addresses from the rest.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    update = actions.add_parser(
        "update", help="download the current ip-ranges.json, check it and replace the snapshot",
        description="Download AWS's ip-ranges.json, check it (its shape, createDate and "
                    "syncToken, and that it is no older than the file it replaces) and write it "
                    "atomically, byte for byte.")
    update.add_argument("--url", default=DEFAULT_URL, help=f"where from (default: {DEFAULT_URL})")
    update.add_argument("--output", "-o", metavar="PATH",
                        help="file to replace (default: the snapshot shipped in the package)")
    update.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help=f"give up after this long (default: {DEFAULT_TIMEOUT_S:g})")
    update.add_argument("--force", action="store_true",
                        help="write it even when it is older than the file it replaces")
    update.set_defaults(run=run_update)
    show = actions.add_parser(
        "show", help="createDate, syncToken and counts of the ip-ranges.json in use",
        description="Describe PATH, else the config's aws_ip_ranges, else the shipped snapshot.")
    show.add_argument("path", nargs="?", metavar="PATH", help="an ip-ranges.json file")
    add_config_option(show)
    show.set_defaults(run=run_show)


def run_update(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise UserError("--timeout: give a number of seconds > 0")
    output = Path(args.output) if args.output else snapshot_path()
    old = current_info(output)
    body = download(args.url, args.timeout)
    try:
        new = check(body, args.url)
    except BadIpRanges as exc:
        kept = f"; {output} left as it was" if output.exists() else ""
        raise UserError(f"{exc}{kept}") from None
    print(f"old: {old.summary() if old else f'none usable at {output}'}")
    print(f"new: {new.summary()}")
    if old and not args.force:
        if new.create_date < old.create_date:
            raise UserError(f"{args.url} (createDate {new.create_date}) is older than {output} "
                            f"(createDate {old.create_date}); --force writes it anyway")
        if (new.create_date, new.sync_token) == (old.create_date, old.sync_token):
            note("ip-ranges", f"{output} is already current")
            return 0
    try:
        write_atomically(output, body)
    except UserError as exc:
        hint = "" if args.output else "; give --output FILE and point aws_ip_ranges at it"
        raise UserError(f"{exc}{hint}") from None
    note("ip-ranges", f"wrote {output}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    if args.path:
        path, label = Path(args.path), ""
    else:
        configured = loaded_config(args).detection.aws_ip_ranges
        path = Path(configured) if configured else snapshot_path()
        label = " (the config's aws_ip_ranges)" if configured else " (the shipped snapshot)"
    try:
        info = read_info(path)
    except BadIpRanges as exc:
        raise UserError(str(exc)) from None
    age = snapshot_age_seconds(info.create_date)
    aged = f", {age_text(age)}" if age is not None else ""
    print(f"{path}{label}: {info.summary()}{aged}")
    return 0
