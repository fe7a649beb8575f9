"""``exfilguard forward``: CloudTrail files, directories or S3 prefixes into the input topic."""

from __future__ import annotations

import argparse
import sys
import time

from streams.cli.common import (
    add_config_option,
    add_kafka_options,
    loaded_config,
    note,
    s3_reader,
)
from streams.errors import UserError
from streams.kafka.admin import ensure_topics, metadata
from streams.kafka.batches import BATCH_RECORDS
from streams.sources.files import check_sources, iter_items


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "forward", help="produce CloudTrail records from files or S3 to the input topic",
        description="Read CloudTrail S3-delivery files, JSON arrays, JSON Lines or EventBridge "
                    "events (gzip or not) from files, directories or s3://bucket/prefix, and "
                    "produce each record to its instance's partition, timestamped with its "
                    "eventTime, in batches of records by default.")
    add_config_option(parser)
    add_kafka_options(parser)
    parser.add_argument("--topic", help="target topic (default: the config's input topic)")
    parser.add_argument("--follow", action="store_true",
                        help="with s3:// sources: keep polling for new objects")
    parser.add_argument("--poll-seconds", type=float, default=60.0,
                        help="with --follow: seconds between listings (default 60)")
    parser.add_argument("--batch-records", type=_batch_records, default=None,
                        metavar="N",
                        help="records per message, one per line (default "
                             f"{BATCH_RECORDS}); 1 sends one keyed message per record")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("sources", nargs="+", metavar="PATH|s3://bucket/prefix")
    parser.set_defaults(run=run)


def _batch_records(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 10000")
    return value


def run(args: argparse.Namespace) -> int:

    loaded = loaded_config(args)
    settings = loaded.kafka
    topic = args.topic or settings.topic_input
    check_sources(args.sources)
    if args.follow and not all(s.startswith("s3://") for s in args.sources):
        raise UserError("--follow works with s3:// sources only")
    if topic == settings.topic_input:
        ensure_topics(settings, [topic])
    meta = metadata(settings)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise UserError(f"topic {topic} does not exist: create it, or run `exfilguard topics "
                        "create` for the default topics")
    partitions = len(meta.topics[topic].partitions)
    progress = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(unit=" records", file=sys.stderr, mininterval=0.5)
    failed = 0
    try:
        if args.follow:
            failed = _follow(args, settings, topic, partitions, progress)
        else:
            failed = _once(iter_items(args.sources, s3_reader()), settings, topic, partitions,
                           progress, args)
    finally:
        if progress is not None:
            progress.close()
    return 1 if failed else 0


def _once(items, settings, topic, partitions, progress, args) -> int:
    from streams.kafka.forwarder import forward

    batch_records = args.batch_records if args.batch_records is not None else BATCH_RECORDS
    stats = forward(items, settings, topic, partitions, progress, batch_records)
    for line in stats.skipped:
        note("forward", f"skipped {line}")
    if stats.skipped_count > len(stats.skipped):
        note("forward", f"… and {stats.skipped_count - len(stats.skipped)} more skipped")
    note("forward", f"{stats.records} records read, {stats.messages} messages produced to "
         f"{topic}, {stats.delivered} delivered, {stats.skipped_count} skipped, "
         f"{stats.failed} failed")
    if stats.failed:
        note("forward", f"delivery failed: {stats.first_failure}")
    return stats.failed


def _follow(args, settings, topic, partitions, progress) -> int:
    from streams.aws.s3 import list_keys, parse_url, read_object, s3_client

    client = s3_client()
    last_key = {source: "" for source in args.sources}
    while True:
        for source in args.sources:
            bucket, prefix = parse_url(source)
            keys = list(list_keys(client, bucket, prefix, last_key[source]))
            if not keys:
                continue
            from streams.sources.files import split_document

            def items(keys=keys, bucket=bucket):
                for key in keys:
                    yield from split_document(read_object(client, bucket, key),
                                              f"s3://{bucket}/{key}")

            if _once(items(), settings, topic, partitions, progress, args):
                return 1  # stop at a delivery failure: the next run resumes from last_key
            last_key[source] = keys[-1]
        time.sleep(args.poll_seconds)
