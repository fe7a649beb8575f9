"""``exfilguard detect``: the detection core over files, findings as JSON Lines."""

from __future__ import annotations

import argparse

from streams.aws.ipranges import load_aws_ranges
from streams.cli.common import (
    add_config_option,
    add_format_option,
    formatted_sink,
    loaded_config,
    note,
    note_late,
    s3_reader,
)
from streams.errors import UserError
from streams.geo import enricher_for
from streams.offline.run import detect
from streams.offline.sinks import JsonLinesSink, deliver
from streams.sources.files import check_sources, sources_of


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect", help="run detection over CloudTrail files; print findings as JSON Lines",
        description="Run the detection core over CloudTrail files or directories (S3-delivery "
                    "files, JSON arrays, JSON Lines, EventBridge events; gzip or not) in "
                    "event-time order and write the final findings as JSON Lines.")
    add_config_option(parser)
    parser.add_argument("--output", "-o", metavar="FILE", help="write findings here, not stdout")
    add_format_option(parser)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, directories or s3:// "
                        "prefixes")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loaded = loaded_config(args)
    aws = load_aws_ranges(loaded.detection)
    check_sources(args.paths)
    findings, stats, _ = detect(sources_of(args.paths, s3_reader()), loaded.detection,
                                aws, enricher_for(loaded))
    if stats.records == stats.bad:
        first = f"; first: {stats.first_bad[0]}" if stats.first_bad else ""
        raise UserError(f"{' '.join(args.paths)}: no CloudTrail records in it ({stats.records} "
                        f"lines or objects read, none a JSON record{first}); give CloudTrail "
                        "files (S3 delivery, JSON Lines, EventBridge)")
    deliver(findings, formatted_sink(JsonLinesSink(args.output or "-"), args.format))
    note("detect", f"{stats.records} records, {stats.relevant} relevant, {stats.bad} bad, "
         f"{len(findings)} findings")
    for line in stats.first_bad:
        note("detect", f"bad record {line}")
    note_late("detect", stats, loaded.detection.late_arrival_grace_seconds)
    return 0
