"""``exfilguard respond``: revoke the active sessions of a finding's instance role (dry run
unless --apply), for one finding or for every finding on the topic."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from streams.cli.common import add_config_option, add_kafka_options, loaded_config, note
from streams.errors import UserError
from streams.offline.sinks import json_line


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "respond", help="revoke a finding's role sessions (dry run unless --apply)",
        description="Put an inline deny-all policy (AWSRevokeOlderSessions) on the finding's "
                    "instance role for sessions issued before now, as the IAM console's "
                    "'Revoke active sessions' does: the stolen key stops working and the "
                    "instance fetches fresh credentials. Each finding read from the topic "
                    "gets its service.additionalInfo.response note written back: to the "
                    "responses topic <findings>-responses, which the worker merges into the "
                    "finding's versions on the findings topic. A finding looked up by id is "
                    "also printed.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("finding_id", nargs="?", metavar="FINDING_ID",
                       help="the finding to answer (its latest version)")
    which.add_argument("--from-topic", action="store_true",
                       help="answer every finding on the findings topic (group "
                            "<app_id>-notify-respond, committed after each batch)")
    parser.add_argument("--apply", action="store_true",
                        help="put the policy (default: print what would be done)")
    parser.add_argument("--allow-role", action="append", default=[], metavar="ROLE",
                        help="a role name (or fnmatch pattern) the responder may touch; "
                             "repeat it; no role is allowed otherwise")
    parser.add_argument("--assume-role", metavar="NAME",
                        help="for findings of other accounts: assume this role in the "
                             "finding's account first")
    parser.add_argument("--from-file", metavar="FILE.jsonl",
                        help="look FINDING_ID up in this file (as detect writes) instead of "
                             "the topic")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--output", "-o", metavar="FILE",
                     help="also append the findings with their response notes here "
                          "(default: stdout for one finding, nothing more with --from-topic)")
    out.add_argument("--output-topic", metavar="T",
                     help="also produce the findings with their response notes to this "
                          "topic (JSON, keyed by finding id; created compacted); the notes "
                          "always go to <findings>-responses, which the worker reads")
    parser.add_argument("--topic", help="findings topic (default: the config's)")
    parser.add_argument("--group", help="with --from-topic: consumer group (default "
                                        "<app_id>-notify-respond)")
    parser.add_argument("--dead-letter", metavar="FILE",
                        help="with --from-topic: failed responses go here (default: the "
                             "topic <findings topic>-notify-dlq)")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="stop after S seconds without a new finding (looking an id up "
                             "on the topic: default 10)")
    add_config_option(parser)
    add_kafka_options(parser)
    parser.set_defaults(run=run)


def iam_for_accounts(assume_role: str | None):
    """An IAM client per account: the caller's own, or through ``--assume-role``."""
    import boto3

    clients: dict[str, Any] = {}
    own = boto3.client("sts").get_caller_identity()["Account"]

    def iam_for(account: str) -> Any:
        if account in clients:
            return clients[account]
        if account == own:
            clients[account] = boto3.client("iam")
        elif assume_role:
            arn = f"arn:aws:iam::{account}:role/{assume_role}"
            credentials = boto3.client("sts").assume_role(
                RoleArn=arn, RoleSessionName="exfilguard-respond")["Credentials"]
            clients[account] = boto3.client(
                "iam", aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"])
        else:
            raise RuntimeError(f"the finding is about account {account}, these credentials "
                               f"are account {own}'s; give --assume-role NAME")
        return clients[account]

    return iam_for


def emitter(args: argparse.Namespace, write_back: bool):
    """Where the noted findings go: with ``write_back``, the responses topic the worker reads
    (so the note reaches the findings topic and stays on later versions); and a topic, a
    file, or stdout (stdout only when neither write-back nor another output is asked for
    with --from-topic)."""
    from streams.notify.ocsf_sink import JsonTopic

    path = args.output
    topics: list[JsonTopic] = []
    if write_back or args.output_topic:
        loaded = loaded_config(args)
        if args.output_topic and args.output_topic in (args.topic, loaded.kafka.topic_findings,
                                 loaded.kafka.topic_input):
            raise UserError(f"--output-topic {args.output_topic} is a topic exfilguard reads "
                            "or the worker writes: give the responses a topic of their own")
        names = [loaded.kafka.topic_responses] if write_back else []
        if args.output_topic and args.output_topic not in names:
            names.append(args.output_topic)
        topics = [JsonTopic(loaded.kafka, name) for name in names]
    to_stdout = path is None and not args.output_topic and not (write_back and args.from_topic)

    def emit(finding: dict) -> None:
        line = json_line(finding)
        for topic in topics:  # each delivered (flushed) before the finding's offset commits
            topic.write([(finding["id"].encode(), line)])
        if to_stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        elif path is not None:
            try:
                with open(path, "ab") as out:
                    out.write(line)
            except OSError as exc:
                raise UserError(f"--output {path}: cannot write ({exc.strerror or exc})"
                                ) from None

    return emit


def lookup_on_topic(args: argparse.Namespace, finding_id: str) -> dict:
    from streams.kafka.codec import BadFinding, finding_codec
    from streams.kafka.findings_reader import findings_consumer
    from streams.notify.respond import find_finding

    loaded = loaded_config(args)
    topic = args.topic or loaded.kafka.topic_findings
    consumer = findings_consumer(loaded.kafka, topic, None, from_beginning=True)
    codec = finding_codec(loaded.kafka, topic, writing=False)
    versions, idle = [], args.timeout or 10.0
    deadline = time.monotonic() + idle
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            deadline = time.monotonic() + idle
            if message.key() == finding_id.encode():
                try:
                    versions.append(codec.decode(message.value() or b""))
                except BadFinding:
                    continue
    finally:
        consumer.close()
    return find_finding(versions, finding_id, f"topic {topic}")


def run(args: argparse.Namespace) -> int:
    from streams.notify.respond import Responder, RespondNotifier, find_finding, with_response

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.apply and not args.allow_role:
        raise UserError("--apply needs --allow-role ROLE (the roles the responder may touch)")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        iam_for = iam_for_accounts(args.assume_role) if args.apply else (lambda _a: None)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"AWS credentials: {exc}; set them (or AWS_PROFILE) for the account "
                        "of the findings") from None
    responder = Responder(iam_for, args.allow_role, apply=args.apply)
    # A finding read from the topic gets its note written back (the worker merges it into the
    # finding's versions); one read from a file is offline and only printed.
    emit = emitter(args, write_back=args.from_topic or not args.from_file)
    if args.from_topic:
        from streams.cli.notify import dead_letters, run_loop

        args.from_file = None
        dead = dead_letters(args)
        return run_loop(args, RespondNotifier(responder, dead, emit), dead)
    if args.from_file:
        from streams.notify.consumer import DeadLetterFile, Tally, read_findings_file

        dead = DeadLetterFile(args.from_file + ".dead-letters.jsonl")
        finding = find_finding(list(read_findings_file(args.from_file, dead, Tally())),
                               args.finding_id, args.from_file)
    else:
        finding = lookup_on_topic(args, args.finding_id)
    response = responder.respond(finding)
    emit(with_response(finding, response))
    note("respond", f"{finding['id']}: {response.outcome}: {response.reason}")
    return 1 if args.apply and not response.applied else 0
