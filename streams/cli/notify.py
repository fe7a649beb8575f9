"""``exfilguard notify``: the findings topic (or a JSON Lines file) to where teams look.

Each notifier is its own subcommand, registered by its own function below."""

from __future__ import annotations

import argparse
import logging

from streams.cli.common import add_config_option, add_kafka_options, loaded_config, note
from streams.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "notify", help="send findings to Slack, a webhook, ...",
        description="Read the findings topic (a consumer group per notifier, committed after "
                    "each delivery) or a JSON Lines file, and send the findings on.")
    notifiers = parser.add_subparsers(dest="notifier", metavar="NOTIFIER")
    register_webhook(notifiers)
    register_securityhub(notifiers)
    register_eventbridge(notifiers)
    register_ocsf(notifiers)


def add_loop_options(parser: argparse.ArgumentParser, name: str) -> None:
    """The options of the shared consumer loop: where findings come from, where dead letters go."""
    add_config_option(parser)
    add_kafka_options(parser)
    parser.add_argument("--from-file", metavar="FILE.jsonl",
                        help="send the findings of this file (as `detect` writes) instead of "
                             "reading the topic")
    parser.add_argument("--dead-letter", metavar="FILE",
                        help="findings that cannot be read or delivered go here as JSON Lines "
                             "(default: the topic <findings topic>-notify-dlq; a file beside "
                             "--from-file)")
    parser.add_argument("--topic", help="findings topic (default: the config's)")
    parser.add_argument("--group", help=f"consumer group (default: <app_id>-notify-{name})")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="exit after S seconds without a new finding (default: run on)")


def dead_letters(args: argparse.Namespace):
    """Where the loop's dead letters go: ``--dead-letter``, a file beside ``--from-file``, else
    the findings topic's ``-notify-dlq``."""
    from streams.notify.consumer import DeadLetterFile, DeadLetterTopic

    if args.dead_letter:
        return DeadLetterFile(args.dead_letter)
    if args.from_file:
        return DeadLetterFile(args.from_file + ".dead-letters.jsonl")
    loaded = loaded_config(args)
    return DeadLetterTopic(loaded.kafka, f"{args.topic or loaded.kafka.topic_findings}-notify-dlq")


def run_loop(args: argparse.Namespace, notifier, dead) -> int:
    """Findings of ``--from-file`` or of the topic (group ``<app_id>-notify-NAME``) to
    ``notifier``; the closing note says what was delivered."""
    from streams.notify.consumer import notify_from_file, notify_from_topic

    if args.from_file:
        tally = notify_from_file(args.from_file, notifier, dead)
    else:
        loaded = loaded_config(args)
        topic = args.topic or loaded.kafka.topic_findings
        tally = notify_from_topic(loaded.kafka, topic,
                                  args.group or f"{loaded.kafka.app_id}-notify-{notifier.name}",
                                  notifier, dead, idle_timeout=args.timeout)
    note(f"notify {notifier.name}", f"{tally.line()}; {notifier.close()}; {dead.close()}")
    return 0


def aws_client(service: str, region: str | None):
    """A boto3 client from the default credential chain (``AWS_ENDPOINT_URL`` honoured)."""
    import boto3
    from botocore.exceptions import NoRegionError

    try:
        return boto3.client(service, region_name=region)
    except NoRegionError:
        raise UserError(f"{service}: no AWS region; give --region or set AWS_REGION") from None


# -- webhook --------------------------------------------------------------------------------------

def register_webhook(notifiers: argparse._SubParsersAction) -> None:
    parser = notifiers.add_parser(
        "webhook", help="post new findings and severity changes to Slack or any HTTP endpoint",
        description="Post one message per new finding and per severity change (not per count "
                    "update): Slack Block Kit when the URL is a Slack webhook, JSON otherwise. "
                    "Retries with backoff; the URL is never printed.")
    url = parser.add_mutually_exclusive_group(required=True)
    url.add_argument("--url-env", metavar="VAR", help="environment variable holding the URL")
    url.add_argument("--url-file", metavar="FILE", help="file holding the URL (a mounted Secret)")
    add_config_option(parser)
    add_kafka_options(parser)
    parser.add_argument("--from-file", metavar="FILE.jsonl",
                        help="send the findings of this file (as `detect` writes) instead of "
                             "reading the topic")
    parser.add_argument("--dead-letter", metavar="FILE",
                        help="unreadable findings go here as JSON Lines (default: the topic "
                             "<findings topic>-notify-dlq; a file with --from-file)")
    parser.add_argument("--topic", help="findings topic (default: the config's)")
    parser.add_argument("--group", help="consumer group (default: <app_id>-notify-webhook)")
    parser.add_argument("--state", metavar="FILE",
                        help="where the severity sent per finding is kept, so a redelivery or "
                             "a restart sends nothing twice (default: in memory)")
    parser.add_argument("--format", choices=("auto", "slack", "json"), default="auto",
                        help="message shape (default auto: Slack for Slack's webhook hosts)")
    parser.add_argument("--max-per-minute", type=float, default=30.0, metavar="N",
                        help="at most N posts a minute (default 30)")
    parser.add_argument("--attempts", type=int, default=6, metavar="N",
                        help="tries per message before giving up, with backoff (default 6)")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="exit after S seconds without a new finding (default: run on)")
    parser.set_defaults(run=run_webhook)


def run_webhook(args: argparse.Namespace) -> int:
    from streams.notify.consumer import (
        DeadLetterFile,
        DeadLetterTopic,
        notify_from_file,
        notify_from_topic,
    )
    from streams.notify.webhook import SentState, WebhookNotifier, read_url

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    notifier = WebhookNotifier(read_url(args.url_env, args.url_file),
                               SentState.load(args.state), style=args.format,
                               per_minute=args.max_per_minute, attempts=args.attempts)
    if args.from_file:
        dead = DeadLetterFile(args.dead_letter or args.from_file + ".dead-letters.jsonl")
        tally = notify_from_file(args.from_file, notifier, dead)
    else:
        loaded = loaded_config(args)
        topic = args.topic or loaded.kafka.topic_findings
        dead = (DeadLetterFile(args.dead_letter) if args.dead_letter
                else DeadLetterTopic(loaded.kafka, f"{topic}-notify-dlq"))
        tally = notify_from_topic(loaded.kafka, topic,
                                  args.group or f"{loaded.kafka.app_id}-notify-webhook",
                                  notifier, dead, idle_timeout=args.timeout)
    note("notify webhook", f"{tally.line()}; {notifier.close()}; {dead.close()}")
    return 0


# -- Security Hub ---------------------------------------------------------------------------------

def register_securityhub(notifiers: argparse._SubParsersAction) -> None:
    parser = notifiers.add_parser(
        "securityhub", help="import findings into AWS Security Hub (ASFF)",
        description="Import every finding version into Security Hub as ASFF with "
                    "BatchImportFindings (at most 100 a call), under the default product of the "
                    "finding's account; same Id, so a redelivery updates. Findings Security Hub "
                    "refuses are retried, then dead-lettered with its reason.")
    add_loop_options(parser, "securityhub")
    parser.add_argument("--region", help="Security Hub's region (default: AWS_REGION)")
    parser.add_argument("--attempts", type=int, default=3, metavar="N",
                        help="imports of a refused finding before it is dead-lettered (default 3)")
    parser.add_argument("--set-notes", action="store_true",
                        help="also set each response note as the finding's Security Hub Note "
                             "(BatchUpdateFindings; needs securityhub:BatchUpdateFindings)")
    parser.set_defaults(run=run_securityhub)


def run_securityhub(args: argparse.Namespace) -> int:
    from streams.notify.securityhub import SecurityHubNotifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = aws_client("securityhub", args.region)
    dead = dead_letters(args)
    notifier = SecurityHubNotifier(client, dead, attempts=args.attempts,
                                   own_account=caller_account(), set_notes=args.set_notes)
    return run_loop(args, notifier, dead)


def caller_account() -> str:
    """The account of the credentials in use (STS GetCallerIdentity), or one line why not."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return boto3.client("sts").get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"AWS credentials: {exc}; set them (IRSA, AWS_PROFILE, ...) for the "
                        "account whose Security Hub takes the findings") from None


# -- EventBridge ----------------------------------------------------------------------------------

def register_eventbridge(notifiers: argparse._SubParsersAction) -> None:
    parser = notifiers.add_parser(
        "eventbridge", help="put findings on an EventBridge bus as GuardDuty events",
        description="Put each new or changed finding on an EventBridge bus with PutEvents (10 a "
                    "call): detail-type 'GuardDuty Finding', detail the finding in GuardDuty's "
                    "shape, source 'exfilguard'. Refused entries are retried, then "
                    "dead-lettered with EventBridge's reason.")
    add_loop_options(parser, "eventbridge")
    parser.add_argument("--region", help="the bus's region (default: AWS_REGION)")
    parser.add_argument("--bus", default="default", help="event bus name or ARN (default: "
                                                         "default)")
    parser.add_argument("--source", default="exfilguard",
                        help="the events' source (default exfilguard; aws.* is AWS's own)")
    parser.add_argument("--state", metavar="FILE",
                        help="the version put per finding is kept here, so a redelivery or a "
                             "restart puts nothing twice (default: in memory)")
    parser.add_argument("--attempts", type=int, default=3, metavar="N",
                        help="puts of a refused event before it is dead-lettered (default 3)")
    parser.set_defaults(run=run_eventbridge)


def run_eventbridge(args: argparse.Namespace) -> int:
    from streams.notify.eventbridge import EventBridgeNotifier, PutState

    if args.source.startswith("aws."):
        raise UserError(f"--source {args.source}: sources starting with aws. are AWS's own and "
                        "PutEvents refuses them; keep exfilguard and add it to the rule")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    state = PutState.load(args.state)
    client = aws_client("events", args.region)
    dead = dead_letters(args)
    return run_loop(args, EventBridgeNotifier(client, dead, bus=args.bus, source=args.source,
                                              state=state, attempts=args.attempts), dead)


# -- OCSF -----------------------------------------------------------------------------------------

def register_ocsf(notifiers: argparse._SubParsersAction) -> None:
    parser = notifiers.add_parser(
        "ocsf", help="write findings as OCSF Detection Findings to a topic or a file",
        description="Convert every finding version to an OCSF 1.8.0 Detection Finding (class "
                    "2004) and write it to a topic (JSON, keyed by finding id; default "
                    "<findings topic>-ocsf, created compacted) or append it to a JSON Lines "
                    "file.")
    add_loop_options(parser, "ocsf")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--output", metavar="FILE", help="append to this JSON Lines file")
    out.add_argument("--output-topic", metavar="T", help="produce to this topic (default "
                                                         "<findings topic>-ocsf)")
    parser.set_defaults(run=run_ocsf)


def run_ocsf(args: argparse.Namespace) -> int:
    from streams.notify.ocsf_sink import OcsfFile, OcsfNotifier, OcsfTopic

    if args.output:
        out = OcsfFile(args.output)
    else:
        loaded = loaded_config(args)
        topic = args.output_topic or f"{args.topic or loaded.kafka.topic_findings}-ocsf"
        if topic in (args.topic, loaded.kafka.topic_findings, loaded.kafka.topic_input):
            raise UserError(f"--output-topic {topic} is a topic exfilguard reads: give the "
                            "OCSF findings a topic of their own")
        out = OcsfTopic(loaded.kafka, topic)
    dead = dead_letters(args)
    return run_loop(args, OcsfNotifier(out, dead), dead)
