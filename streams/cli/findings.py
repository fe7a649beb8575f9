"""``exfilguard findings``: print the findings topic as JSON Lines, the example consumer."""

from __future__ import annotations

import argparse
import sys
import time

from confluent_kafka import KafkaError

from streams.cli.common import (
    add_config_option,
    add_format_option,
    add_kafka_options,
    loaded_config,
    note,
)
from streams.errors import UserError
from streams.kafka.codec import BadFinding, finding_codec
from streams.kafka.findings_reader import findings_consumer
from streams.offline.sinks import json_line


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "findings", help="print findings from the findings topic as JSON Lines",
        description="Consume the findings topic and print each finding as one JSON line; exit "
                    "after --timeout seconds without a new message.")
    add_config_option(parser)
    add_kafka_options(parser)
    parser.add_argument("--topic", help="findings topic (default: the config's)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="read the whole topic, not only new findings")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="exit after S seconds without a new message (default 10)")
    parser.add_argument("--latest-only", action="store_true",
                        help="print each finding id once, its latest version, at the end")
    parser.add_argument("--summary", action="store_true",
                        help="one readable line per finding instead of JSON: the latest "
                             "version of each, at the end (unless --all-versions)")
    parser.add_argument("--all-versions", action="store_true",
                        help="with --summary: a line for every version as it arrives")
    parser.add_argument("--group", help="consumer group (default: a new one, commits nothing)")
    add_format_option(parser)
    parser.set_defaults(run=run)


SEVERITY_LABELS = {8: "HIGH", 5: "MEDIUM"}


def summary(finding: dict) -> str:
    action = finding["service"]["action"]["awsApiCallAction"]
    ip = action["remoteIpDetails"]
    remote = (f"account {action['remoteAccountDetails']['accountId']}"
              if action["remoteAccountDetails"] else ip["ipAddressV4"] or ip["ipAddressV6"])
    archived = " (archived)" if finding["service"]["archived"] else ""
    return (f"{SEVERITY_LABELS.get(finding['severity'], finding['severity'])} "
            f"{finding['type'].rsplit('/', 1)[-1]}{archived}: "
            f"{finding['resource']['instanceDetails']['instanceId']} key "
            f"{finding['resource']['accessKeyDetails']['accessKeyId']} used from {remote}, "
            f"{finding['service']['count']} call(s) {finding['service']['eventFirstSeen']} .. "
            f"{finding['service']['eventLastSeen']} [{finding['evidence']['rule']}]"
            f"{_lineage(finding)}{_calls(finding)} "
            f"account {finding['accountId']} id {finding['id']}")


SUMMARY_CALLS = 5  # the most frequent calls a summary line names


def _calls(finding: dict) -> str:
    """`` calls: s3:GetObject x4 (sensitive), ...``: what the key did, the most frequent first."""
    calls = (finding["service"].get("additionalInfo") or {}).get("apiCalls") or []
    if not calls:
        return ""
    named = []
    for call in calls[:SUMMARY_CALLS]:
        notes = (["sensitive"] if call["sensitive"] else []) + [
            f"{code} x{count}" for code, count in call["errorCodes"].items()]
        named.append(f"{call['serviceName']}:{call['name']} x{call['count']}"
                     + (f" ({', '.join(notes)})" if notes else ""))
    more = len(calls) - SUMMARY_CALLS
    sensitive = sum(1 for call in calls[SUMMARY_CALLS:] if call["sensitive"])
    if more > 0:
        named.append(f"{more} more" + (f", {sensitive} of them sensitive" if sensitive else ""))
    return " calls: " + ", ".join(named) + ";"


def _lineage(finding: dict) -> str:
    chain = finding["evidence"].get("derivedFrom")
    if not chain:
        return ""
    return f" derived from {chain[-1]['accessKeyId']} in {len(chain)} hop(s);"


def render_line(finding: dict, as_summary: bool, shape: str = "guardduty") -> bytes:
    if as_summary:
        return (summary(finding) + "\n").encode()
    if shape == "guardduty":
        return json_line(finding)
    from streams.notify.formats import formatted

    return json_line(formatted(finding, shape))


def run(args: argparse.Namespace) -> int:
    if args.summary and args.format != "guardduty":
        raise UserError(f"--summary prints readable lines, --format {args.format} JSON: give one")
    loaded = loaded_config(args)
    settings = loaded.kafka
    topic = args.topic or settings.topic_findings
    consumer = findings_consumer(settings, topic, args.group, args.from_beginning)
    codec = finding_codec(settings, topic, writing=False)  # reads every encoding
    # Every version of a finding shares its id: a summary shows each finding once.
    latest_only = args.latest_only or (args.summary and not args.all_versions)
    latest: dict[str, dict] = {}
    printed = bad = 0
    deadline = time.monotonic() + args.timeout
    out = sys.stdout.buffer
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise UserError(f"consuming {topic}: {message.error().str()}")
            try:
                finding = codec.decode(message.value() or b"")
            except BadFinding as exc:
                bad += 1
                note("findings", f"skipped {topic}/{message.partition()}/{message.offset()}: "
                     f"{exc}")
                continue
            deadline = time.monotonic() + args.timeout
            if latest_only:
                latest[finding["id"]] = finding
            else:
                out.write(render_line(finding, args.summary, args.format))
                out.flush()
                printed += 1
    finally:
        consumer.close()
    for finding_id in sorted(latest, key=lambda i: (latest[i]["createdAt"], i)):
        out.write(render_line(latest[finding_id], args.summary, args.format))
        printed += 1
    out.flush()
    note("findings", f"{printed} findings printed" + (f", {bad} unreadable" if bad else ""))
    return 0
