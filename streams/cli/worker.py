"""``exfilguard worker``: the Faust stream job (what ``faust -A streams.app worker`` runs; here also
the local tables of a worker that did not stop cleanly are restored from their changelogs)."""

from __future__ import annotations

import argparse
import logging
import os

from streams.cli.common import add_config_option, add_kafka_options, loaded_config
from streams.errors import UserError
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


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"web port {port} on {host} is taken ({exc.strerror}): another "
                            f"worker? Set EXFILGUARD_WEB_PORT (kafka.web_port) to a free port"
                            ) from None


def run(args: argparse.Namespace) -> int:
    # Validate everything a worker needs before Faust starts: Faust itself would retry a dead
    # broker forever and turn a config typo into a traceback.
    loaded = loaded_config(args)
    if args.config:
        os.environ["EXFILGUARD_CONFIG"] = args.config
    if args.bootstrap_servers:
        os.environ["EXFILGUARD_BOOTSTRAP_SERVERS"] = args.bootstrap_servers
    _check_port_free(loaded.kafka.web_host, loaded.kafka.web_port)
    ensure_topics(loaded.kafka)
    os.makedirs(loaded.kafka.data_dir, exist_ok=True)
    for noisy in ("aiokafka", "faust.transport.drivers.aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from faust.worker import Worker

    from streams.app.state import mark_stopped, wipe_if_unclean
    from streams.app.wiring import create_app

    app = create_app(loaded)
    app.finalize()
    wipe_if_unclean(loaded.kafka.data_dir, str(app.conf.tabledir))
    worker = Worker(app, loglevel=args.loglevel, quiet=True)
    try:
        worker.execute_from_commandline()  # exits when the worker is stopped (SIGTERM, SIGINT)
    except SystemExit as stopped:
        if stopped.code in (0, None) and worker.crash_reason is None:
            mark_stopped(loaded.kafka.data_dir)
        raise
    mark_stopped(loaded.kafka.data_dir)
    return 0
