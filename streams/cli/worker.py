"""``exfilguard worker``: the Faust stream job (the same as ``faust -A streams.app worker``)."""

from __future__ import annotations

import argparse
import logging
import os

from streams.cli.common import add_config_option, add_kafka_options, loaded_config
from streams.kafka.admin import ensure_topics


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help="run the stream job: CloudTrail topic in, findings topic out",
        description="Run the Faust worker. Run as many as the input topic has partitions.")
    add_config_option(parser)
    add_kafka_options(parser)
    parser.add_argument("--loglevel", "-l", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Validate everything a worker needs before Faust starts: Faust itself would retry a dead
    # broker forever and turn a config typo into a traceback.
    loaded = loaded_config(args)
    if args.config:
        os.environ["EXFILGUARD_CONFIG"] = args.config
    if args.bootstrap_servers:
        os.environ["EXFILGUARD_BOOTSTRAP_SERVERS"] = args.bootstrap_servers
    ensure_topics(loaded.kafka)
    os.makedirs(loaded.kafka.data_dir, exist_ok=True)
    for noisy in ("aiokafka", "faust.transport.drivers.aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from faust.worker import Worker

    from streams.app.wiring import create_app

    app = create_app(loaded)
    app.finalize()
    worker = Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()  # returns when the worker is stopped (SIGTERM, SIGINT)
    return 0
