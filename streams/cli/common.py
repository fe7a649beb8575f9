"""Pieces every command shares: the config option, JSON output, stderr notes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streams.config.loader import Config, load_config
from streams.core.timerange import BadRange, TimeRange, parse_range
from streams.errors import UserError


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="YAML config (default: $EXFILGUARD_CONFIG, else built-in defaults)")


def add_kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT",
                        help="Kafka bootstrap servers (default: $EXFILGUARD_BOOTSTRAP_SERVERS, "
                             "else the config, else 127.0.0.1:9092)")


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("guardduty", "asff", "ocsf"), default="guardduty",
                        help="shape of each finding: guardduty (default, as produced), asff "
                             "(Security Hub) or ocsf (OCSF 1.8.0 Detection Finding, class 2004)")


def formatted_sink(sink, shape: str):
    """``sink`` as it is for guardduty, else each finding converted before it is written."""
    if shape == "guardduty":
        return sink
    from streams.notify.formats import FormattedSink

    return FormattedSink(sink, shape)


def loaded_config(args: argparse.Namespace) -> Config:
    loaded = load_config(getattr(args, "config", None))
    servers = getattr(args, "bootstrap_servers", None)
    if servers:
        from dataclasses import replace
        loaded = replace(loaded, kafka=replace(loaded.kafka, bootstrap_servers=servers))
    return loaded


def time_range(args: argparse.Namespace) -> TimeRange:
    """``--start``/``--end`` as a range, or one line naming the bad option."""
    try:
        return parse_range(args.start, args.end)
    except BadRange as exc:
        raise UserError(str(exc)) from None


def note(command: str, message: str) -> None:
    print(f"exfilguard {command}: {message}", file=sys.stderr)


def note_late(command: str, stats: Any, window_s: int) -> None:
    """Say how many events came later than the reorder window (judged as they came)."""
    if stats.late:
        note(command, f"{stats.late} events came more than {window_s} s of event time behind "
                      "newer ones (late_arrival_grace_seconds): judged as they came, as the "
                      "stream judges late records")


def s3_reader():
    """The S3 reader for ``iter_items`` (boto3 is imported only when an s3:// source is read)."""
    from streams.aws.s3 import read_prefix

    return read_prefix
