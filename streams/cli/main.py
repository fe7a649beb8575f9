"""The ``exfilguard`` command: each module of this package has ``register(subparsers)`` setting
``run`` (parsed arguments → exit code); a ``UserError`` is one line on stderr and a non-zero
exit, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import sys

from streams import __version__
from streams.errors import UserError

# One module per command; a module missing here is simply not offered.
COMMAND_MODULES = (
    "forward",
    "worker",
    "findings",
    "detect",
    "topics",
    "replay",
    "backtest",
    "accounts",
    "inventory",
    "ip_ranges",
    "dlq",
    "notify",
    "respond",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exfilguard",
        description="Detect stolen EC2 instance credentials in CloudTrail, streaming or offline.",
    )
    parser.add_argument("--version", action="version", version=f"exfilguard {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"streams.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"streams.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"exfilguard {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"exfilguard {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # A downstream pipe closed (`| head`): not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
