"""``exfilguard replay``: detection over a time range of a topic (or files), state of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from typing import Any

from streams.aws.ipranges import load_aws_ranges
from streams.cli.common import (
    add_config_option,
    add_format_option,
    add_kafka_options,
    formatted_sink,
    loaded_config,
    note,
    note_late,
    s3_reader,
    time_range,
)
from streams.config.loader import Config
from streams.core.records import Event
from streams.errors import UserError
from streams.geo import enricher_for
from streams.kafka.reader import RUN_VALUES
from streams.kafka.sink import TopicSink
from streams.offline.replay import events_of_files, events_of_topic
from streams.offline.run import RunStats, run_detection
from streams.offline.sinks import JsonLinesSink, Sink, deliver
from streams.sources.files import check_sources, sources_of


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay", help="run detection over a time range of a topic (or files), apart from the "
                       "live worker",
        description="Read the records of a topic whose timestamps (their eventTime, set by "
                    "`exfilguard forward`) fall in [--start, --end), or the records of files and "
                    "s3:// prefixes, and run the detection core over them with state of its "
                    "own: no consumer group is joined, nothing is committed, no table is made. "
                    "The same range and config give byte-identical findings.")
    add_config_option(parser)
    add_kafka_options(parser)
    add_source_options(parser)
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--output", "-o", metavar="FILE",
                     help="write findings here as JSON Lines ('-' for stdout)")
    out.add_argument("--output-topic", metavar="T2",
                     help="produce findings to this topic as Avro, keyed by finding id "
                          "(created, compacted, if missing)")
    add_format_option(parser)
    parser.set_defaults(run=run)


def add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", metavar="T",
                        help="topic to read (default without PATHs: the config's input topic)")
    parser.add_argument("--start", metavar="TIME",
                        help="first event time read, ISO 8601 (2023-07-10T11:00:00Z); required "
                             "with a topic")
    parser.add_argument("--end", metavar="TIME",
                        help="event time the range ends before, ISO 8601; required with a topic")
    parser.add_argument("--max-delay", type=float, default=3600.0, metavar="S",
                        help="with a topic: read records forwarded up to S seconds of event time "
                             "after --end, for late ones timestamped within the range (default "
                             "3600; -1 reads to the end of each partition)")
    parser.add_argument("--hold", type=int, default=RUN_VALUES, metavar="N",
                        help="with a topic: records that may matter held in memory at most; "
                             "beyond, sorted runs of N go to temporary files ($TMPDIR) and are "
                             f"merged (default {RUN_VALUES:,}, some 40 MB)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files, directories or s3:// prefixes instead of a topic")




def describe_source(args: argparse.Namespace, loaded: Config) -> str:
    window = time_range(args)
    where = " ".join(args.paths) if args.paths else (args.topic or loaded.kafka.topic_input)
    return f"{where} {window.describe()}" if window.bounded else where


def read_source(args: argparse.Namespace, loaded: Config, command: str,
                reorder_s: int | None = None) -> tuple[Iterator[Event], RunStats]:
    """The events of the PATHs or of the topic range, ordered as ``detect`` orders them, read
    as they are consumed; ``reorder_s`` defaults to the config's late-arrival grace."""
    window = time_range(args)
    if reorder_s is None:
        reorder_s = loaded.detection.late_arrival_grace_seconds
    if args.paths:
        if args.topic:
            raise UserError("give PATHs or --topic, not both")
        check_sources(args.paths)
        return events_of_files(sources_of(args.paths, s3_reader()), window, reorder_s)
    topic = args.topic or loaded.kafka.topic_input
    if window.start_ms is None or window.end_ms is None:
        raise UserError(f"reading topic {topic} needs --start and --end (ISO 8601, e.g. "
                        "--start 2023-07-10T00:00:00Z --end 2023-07-11T00:00:00Z)")
    if args.max_delay < 0 and args.max_delay != -1:
        raise UserError(f"--max-delay {args.max_delay:g}: seconds, at least 0 (or -1)")
    max_delay_ms = None if args.max_delay == -1 else int(args.max_delay * 1000)
    if args.hold < 1:
        raise UserError(f"--hold {args.hold}: records held in memory, at least 1")
    events, stats, topic_stats = events_of_topic(loaded.kafka, topic, window, max_delay_ms,
                                                 progress_bar(args), reorder_s, args.hold)

    def described() -> Iterator[Event]:  # what was read, once it has been
        yield from events
        offsets = " ".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(topic_stats.offsets.items()))
        note(command, f"{topic_stats.describe()} (offsets {offsets}); read with no consumer "
                      f"group and no commits, the worker's group {loaded.kafka.app_id} untouched")

    return described(), stats


def progress_bar(args: argparse.Namespace) -> Callable[[int], Any] | None:
    """A bar with records/s and ETA, made once the number of records to read is known."""
    if args.no_progress or not sys.stderr.isatty():
        return None

    def make(total: int) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, unit=" records", unit_scale=True, file=sys.stderr,
                    mininterval=0.5, desc="reading")

    return make


def check_output_topic(args: argparse.Namespace, loaded: Config) -> None:
    target = args.output_topic
    source = args.topic or (None if args.paths else loaded.kafka.topic_input)
    if target == source:
        raise UserError(f"--output-topic {target} is the topic replayed: write findings to a "
                        "topic of their own")
    if target in (loaded.kafka.topic_findings, loaded.kafka.topic_input, loaded.kafka.topic_dlq):
        raise UserError(f"--output-topic {target} is one of the live worker's topics: replay "
                        "writes to a topic of its own")


def run(args: argparse.Namespace) -> int:
    loaded = loaded_config(args)
    time_range(args)  # a malformed time fails before anything is read
    if args.output_topic:
        check_output_topic(args, loaded)
        if args.format != "guardduty":
            raise UserError(f"--format {args.format} is for --output: a findings topic holds "
                            "the findings' own shape (the notifiers convert it)")
    aws = load_aws_ranges(loaded.detection)
    events, stats = read_source(args, loaded, "replay")
    result = run_detection(events, loaded.detection, aws, enricher_for(loaded))
    sink: Sink = (TopicSink(loaded.kafka, args.output_topic) if args.output_topic
                  else formatted_sink(JsonLinesSink(args.output), args.format))
    where = deliver(result.findings, sink)
    note("replay", f"{stats.records} records, {stats.relevant} relevant, {stats.bad} bad, "
                   f"{len(result.findings)} findings, {where}")
    for line in stats.first_bad:
        note("replay", f"bad record {line}")
    note_late("replay", stats, loaded.detection.late_arrival_grace_seconds)
    return 0
