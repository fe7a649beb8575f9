"""``exfilguard detect``: the detection core over files, findings as JSON Lines."""

from __future__ import annotations

import argparse

from streams.aws.ipranges import load_aws_ranges
from streams.cli.common import (
    add_config_option,
    loaded_config,
    note,
    s3_reader,
)
from streams.geo import enricher_for
from streams.offline.run import detect
from streams.offline.sinks import JsonLinesSink, deliver
from streams.sources.files import check_sources, iter_items


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect", help="run detection over CloudTrail files; print findings as JSON Lines",
        description="Run the detection core over CloudTrail files or directories (S3-delivery "
                    "files, JSON arrays, JSON Lines, EventBridge events; gzip or not) in "
                    "event-time order and write the final findings as JSON Lines.")
    add_config_option(parser)
    parser.add_argument("--output", "-o", metavar="FILE", help="write findings here, not stdout")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, directories or s3:// "
                        "prefixes")
    parser.set_defaults(run=run)




def run(args: argparse.Namespace) -> int:
    loaded = loaded_config(args)
    aws = load_aws_ranges(loaded.detection)
    check_sources(args.paths)
    findings, stats, _ = detect(iter_items(args.paths, s3_reader()), loaded.detection,
                                aws, enricher_for(loaded))
    deliver(findings, JsonLinesSink(args.output or "-"))
    note("detect", f"{stats.records} records, {stats.relevant} relevant, {stats.bad} bad, "
         f"{len(findings)} findings")
    for line in stats.first_bad:
        note("detect", f"bad record {line}")
    return 0
