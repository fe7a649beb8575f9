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

FOLLOW_DAYS = 2  # streams.aws.s3_follow's, without importing confluent-kafka at parse time
OBJECTS_PER_TRANSACTION = 100


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
    parser.add_argument("--follow-days", type=int, default=FOLLOW_DAYS, metavar="N",
                        help="with --follow: the newest N day folders of each region are "
                             f"listed again at every poll (default {FOLLOW_DAYS})")
    parser.add_argument("--cursor-topic", metavar="T",
                        help="with --follow: compacted topic of the per-folder cursors "
                             "(default APP_ID-forwarder-cursors)")
    parser.add_argument("--objects-per-transaction", type=int,
                        default=OBJECTS_PER_TRANSACTION, metavar="N",
                        help="with --follow: objects whose records and cursors are committed "
                             f"together (default {OBJECTS_PER_TRANSACTION})")
    parser.add_argument("--sqs-queue-url", metavar="URL",
                        help="read the objects S3 event notifications on this SQS queue name "
                             "(directly, through SNS or EventBridge) instead of sources")
    parser.add_argument("--batch-records", type=_batch_records, default=None,
                        metavar="N",
                        help="records per message, one per line (default "
                             f"{BATCH_RECORDS}); 1 sends one keyed message per record")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("sources", nargs="*", metavar="PATH|s3://bucket/prefix")
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
    if args.sqs_queue_url and (args.sources or args.follow):
        raise UserError("--sqs-queue-url reads the objects the queue names: give no sources "
                        "and no --follow")
    if not args.sqs_queue_url and not args.sources:
        raise UserError("give files, directories or s3:// prefixes, or --sqs-queue-url")
    if args.follow_days < 1 or args.objects_per_transaction < 1:
        raise UserError("--follow-days and --objects-per-transaction must be at least 1")
    check_sources(args.sources)
    if args.follow and not all(s.startswith("s3://") for s in args.sources):
        raise UserError("--follow works with s3:// sources only")
    # A missing topic is made as the input topic is (time retention off, the partitions of
    # the config), so an archive forwarded into a fresh topic for a backtest keeps every record.
    ensure_topics(settings, [topic], input_like=(topic,))
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
        if args.sqs_queue_url:
            failed = _queue(args, settings, topic, partitions)
        elif args.follow:
            failed = _follow(args, settings, topic, partitions)
        else:
            items = iter_items(args.sources, s3_reader(), runs=True)
            failed = _once(items, settings, topic, partitions, progress, args)
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


def _stopper():
    """SIGTERM and SIGINT end the loop between two units of work, never inside one."""
    import signal

    stopping = []

    def stop(signum, frame) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return lambda: bool(stopping)


def _batch(args) -> int:
    return args.batch_records if args.batch_records is not None else BATCH_RECORDS


def _queue(args, settings, topic, partitions) -> int:
    from streams.aws.s3 import s3_client
    from streams.aws.sqs import sqs_client

    stopped = _stopper()
    totals = run_queue(s3_client(), sqs_client(args.sqs_queue_url), args.sqs_queue_url,
                       settings, topic, partitions, _batch(args), stopped, note,
                       wait_seconds=max(0, min(20, int(args.poll_seconds))))
    note("forward", f"stopped: {totals.messages} messages, {totals.objects} objects, "
         f"{totals.records} records, {totals.poison} poison, {totals.digests} digests skipped")
    return 0


def _follow(args, settings, topic, partitions) -> int:
    from streams.aws.s3 import s3_client
    from streams.aws.s3_follow import Cursors, new_objects
    from streams.kafka.admin import admin
    from streams.kafka.follow import KafkaFollower, cursor_topic_name, transactional_id

    stopped = _stopper()
    client = s3_client()
    follower = KafkaFollower(settings, topic, partitions,
                             transactional_id(settings, args.sources),
                             args.cursor_topic or cursor_topic_name(settings), _batch(args))
    follower.ensure_cursor_topic(admin(settings))
    cursors = follower.load(Cursors())
    note("forward", f"following {len(args.sources)} prefix(es) from {len(cursors.seen)} "
         f"folder cursors in {follower.cursor_topic}")
    digests: set[str] = set()

    def digest(folder: str) -> None:
        if folder not in digests:
            digests.add(folder)
            note("forward", f"skipping {folder} (CloudTrail's integrity digests, no events)")

    while not stopped():
        chunk: list = []
        count = 0
        for source in args.sources:
            for found in new_objects(client, source, cursors, args.follow_days, digest):
                keys = list(found.keys)
                while keys:
                    room = args.objects_per_transaction - count
                    chunk.append((found, keys[:room]))
                    count += len(keys[:room])
                    keys = keys[room:]
                    if count >= args.objects_per_transaction:
                        if _commit(follower, client, chunk, cursors):
                            return 1
                        chunk, count = [], 0
                        if stopped():
                            return 0
        if chunk and _commit(follower, client, chunk, cursors):
            return 1
        deadline = time.monotonic() + args.poll_seconds
        while not stopped() and time.monotonic() < deadline:
            time.sleep(min(0.2, args.poll_seconds))
    return 0


def _commit(follower, client, chunk, cursors) -> int:
    from streams.aws.s3 import read_object

    try:
        stats = follower.forward(lambda bucket, key: read_object(client, bucket, key), chunk,
                                 cursors)
    except UserError as exc:
        if "Kafka transaction" in str(exc):
            raise
        note("forward", f"{exc}; the transaction was aborted, the next poll retries")
        return 0
    objects = sum(len(keys) for _, keys in chunk)
    for line in stats.skipped:
        note("forward", f"skipped {line}")
    note("forward", f"{objects} objects, {stats.records} records, {stats.messages} messages "
         f"committed" if not stats.failed else
         f"{objects} objects not committed: {stats.first_failure}; the next poll retries")
    return 0  # a failed transaction is aborted whole: the cursors did not move, retry next poll


def run_queue(s3, sqs, queue_url: str, settings, topic: str, partitions: int,
              batch_records: int, stop, note, wait_seconds: int = 20):
    """Receive, forward, dead-letter the poison, delete: until ``stop()`` is true. Here because
    it joins the two edges (SQS and S3, Kafka), which do not import each other."""
    from confluent_kafka import Producer

    from streams.aws.s3 import is_digest
    from streams.aws.sqs import QueueStats, Unreadable, delete, get_object, receive
    from streams.kafka.forwarder import ForwardStats, forward, producer_config
    from streams.sources.files import Record, split_document

    totals = QueueStats()
    dlq = Producer(producer_config(settings))
    while not stop():
        received = receive(sqs, queue_url, wait_seconds)
        if not received:
            continue
        items: list = []
        poison: list[tuple[object, str, str]] = []  # (message, source, reason)
        settled: list = []  # deleted once Kafka has everything
        for message in received:
            if message.problem is not None:
                poison.append((message, f"sqs:{message.message_id}", message.problem))
                settled.append(message)
                continue
            try:
                found: list = []
                for ref in message.objects:
                    if is_digest(ref.key):
                        totals.digests += 1
                        continue
                    payload = get_object(s3, ref)
                    if payload is None:
                        poison.append((message, ref.url, "object not found (deleted?)"))
                        continue
                    parsed = list(split_document(payload, ref.url))
                    if parsed and not any(isinstance(i, Record) for i in parsed):
                        poison.append((message, ref.url, f"no CloudTrail record: "
                                       f"{parsed[0].reason}"))
                        continue
                    totals.objects += 1
                    found += parsed
            except Unreadable as exc:
                note("forward", f"cannot read {exc}; the message stays on the queue")
                continue
            items += found
            settled.append(message)
        stats = (forward(iter(items), settings, topic, partitions, None, batch_records)
                 if items else ForwardStats())
        totals.records += stats.records
        for line in stats.skipped:
            note("forward", f"skipped {line}")
        if stats.failed:
            totals.failed_rounds += 1
            note("forward", f"delivery failed ({stats.first_failure}): {len(received)} "
                 "messages stay on the queue and come back")
            continue
        failures: list[str] = []

        def dead_lettered(err, msg, failures=failures) -> None:
            if err is not None:
                failures.append(err.str())

        for message, source, reason in poison:
            dlq.produce(settings.topic_dlq, key=source.encode(), value=message.body.encode(),
                        headers=[("exfilguard-reason", f"poison object: {reason}".encode()[:400]),
                                 ("exfilguard-source", source.encode())],
                        on_delivery=dead_lettered)
            note("forward", f"dead-lettered {source}: {reason}")
        if dlq.flush(60) or failures:
            totals.failed_rounds += 1
            note("forward", f"dead-letter delivery failed ({failures[:1]}): the messages stay")
            continue
        totals.poison += len(poison)
        delete(sqs, queue_url, settled)
        totals.messages += len(settled)
        note("forward", f"{len(settled)} messages, {stats.records} records forwarded, "
             f"{len(poison)} poison, {totals.digests} digests skipped so far")
    return totals
