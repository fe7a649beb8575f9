"""``exfilguard topics create``: the input, findings and dead-letter topics."""

from __future__ import annotations

import argparse

from streams.cli.common import add_config_option, add_kafka_options, loaded_config, note
from streams.kafka.admin import ensure_topics


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("topics", help="create the topics exfilguard uses")
    parser.add_argument("action", choices=["create"], help="create the missing topics")
    add_config_option(parser)
    add_kafka_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loaded = loaded_config(args)
    created = ensure_topics(loaded.kafka)
    kafka = loaded.kafka
    note("topics", f"created {', '.join(created)}" if created else
         f"{kafka.topic_input}, {kafka.topic_findings}, {kafka.topic_responses}, "
         f"{kafka.topic_dlq} already exist")
    return 0
