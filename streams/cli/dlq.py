"""``exfilguard dlq``: what the dead-letter topic holds, grouped by reason, and the re-drive of
chosen records to the input topic once their cause is mended (each at most once)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

from streams.cli.common import add_config_option, add_kafka_options, loaded_config, note
from streams.errors import UserError
from streams.kafka.deadletters import (
    DeadLetter,
    marker_topic,
    parse_ranges,
    read_dead_letters,
    redrive,
    redriven,
    select,
)

EXAMPLES = 3
EXAMPLE_BYTES = 160


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dlq", help="list the dead-letter topic by reason; re-drive records to the input topic",
        description="Read the dead-letter topic: `list` groups it by reason with counts and "
                    "examples; `redrive` sends chosen records back to the input topic, each "
                    "at most once (re-driven ones are marked in <dlq>-redriven).")
    commands = parser.add_subparsers(dest="dlq_command", metavar="SUBCOMMAND", required=True)
    listing = commands.add_parser("list", help="dead letters grouped by reason")
    listing.add_argument("--json", action="store_true",
                         help="one JSON object per reason instead of text")
    again = commands.add_parser("redrive", help="send chosen dead letters to the input topic")
    again.add_argument("--reason", action="append", default=[], metavar="R",
                       help="the records whose reason starts with R (repeatable)")
    again.add_argument("--offsets", action="append", default=[], metavar="P:A-B",
                       help="the records at offsets A to B of dead-letter partition P "
                            "(repeatable)")
    again.add_argument("--topic", help="where to send them (default: the config's input topic)")
    again.add_argument("--dry-run", action="store_true",
                       help="print what would be sent, send nothing")
    for sub in (listing, again):
        add_config_option(sub)
        add_kafka_options(sub)
        sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = loaded_config(args).kafka
    if args.dlq_command == "list":
        return list_letters(read_dead_letters(settings), redriven(settings), settings.topic_dlq,
                            args.json)
    if not args.reason and not args.offsets:
        raise UserError("choose the records to re-drive: --reason R and/or --offsets P:A-B "
                        "(see `exfilguard dlq list`)")
    ranges = parse_ranges(args.offsets)
    chosen = select(read_dead_letters(settings), args.reason, ranges)
    topic = args.topic or settings.topic_input
    if not chosen:
        note("dlq", f"no dead letter in {settings.topic_dlq} matches; nothing sent")
        return 1
    if args.dry_run:
        done = redriven(settings)
        for letter in chosen:
            state = "already re-driven" if letter.position in done else f"would go to {topic}"
            print(f"{letter.position}  {letter.source}  {state}  {letter.reason}")
        return 0
    sent, skipped = redrive(settings, chosen, topic)
    note("dlq", f"re-drove {sent} record(s) to {topic}"
         + (f"; {skipped} already re-driven, skipped (see {marker_topic(settings)})"
            if skipped else ""))
    return 0


def reason_group(reason: str) -> str:
    """What dead letters share: the reason up to its detail, e.g. ``error: KeyError`` of
    ``error: KeyError: 'x'``, ``malformed: not JSON`` of ``malformed: not JSON (line 1 …)``;
    always a prefix of the reason, so ``redrive --reason`` takes it as it is printed."""
    head = reason.split(" (", 1)[0]
    return ": ".join(head.split(": ")[:2])


def list_letters(letters: list[DeadLetter], done: set[str], topic: str, as_json: bool) -> int:
    groups: dict[str, list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        groups[reason_group(letter.reason)].append(letter)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    out = sys.stdout
    if not as_json:
        print(f"{len(letters)} record(s) in {topic}, {len(groups)} reason(s), "
              f"{sum(letter.position in done for letter in letters)} already re-driven",
              file=out)
    for reason, group in ordered:
        examples = [{"offset": letter.position, "source": letter.source, "reason": letter.reason,
                     "value": letter.value[:EXAMPLE_BYTES].decode(errors="replace")}
                    for letter in group[:EXAMPLES]]
        again = sum(letter.position in done for letter in group)
        if as_json:
            print(json.dumps({"reason": reason, "count": len(group), "redriven": again,
                              "offsets": [letter.position for letter in group],
                              "examples": examples}), file=out)
            continue
        print(f"\n{len(group):>7}  {reason}" + (f"  ({again} re-driven)" if again else ""),
              file=out)
        for example in examples:
            print(f"         {example['offset']}  from {example['source']}: "
                  f"{example['reason']}\n           {example['value']}", file=out)
    return 0
