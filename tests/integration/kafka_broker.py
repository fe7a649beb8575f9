"""Start and stop a throwaway local Kafka broker for the integration tests.

Not a test module: a helper, imported like tests/helm/helmchart.py is
(``from kafka_broker import free_port, start_broker, stop_broker``).
It drives tools/kafka/kafka.sh, so the broker jars come from the shared cache
(KAFKA_LIB, by default <repo>/.cache/kafka-lib; fetched by Maven the first time)
and each broker keeps its data, logs and pid file in the directory it is given.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "tools" / "kafka" / "kafka.sh"

# Below Linux's ephemeral range (32768-60999), so no client connection's local port collides.
_PORT_RANGE = (20000, 32000)


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free, and whose next port (the controller's) is free too."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(*_PORT_RANGE)
        if _port_is_free(port) and _port_is_free(port + 1):
            return port
    raise RuntimeError(f"no free pair of ports found in {_PORT_RANGE}")


def _run(command: str, tmp_dir: Path, port: int, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, KAFKA_DIR=str(tmp_dir), KAFKA_PORT=str(port))
    # kafka.sh's readiness check needs confluent-kafka, which the test interpreter has.
    env.setdefault("PYTHON", sys.executable)
    return subprocess.run(
        [str(KAFKA_SH), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_broker(tmp_dir: Path, port: int) -> str:
    """Start a broker on 127.0.0.1:port (controller on port+1) with its files in tmp_dir.

    Returns the bootstrap servers string once the broker answers metadata requests.
    Idempotent: a broker already running from tmp_dir is reused.
    """
    # The first run ever may fetch the jars with Maven; later ones take a few seconds.
    result = _run("up", Path(tmp_dir), port, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(
            f"tools/kafka/kafka.sh up failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return f"127.0.0.1:{port}"


def stop_broker(tmp_dir: Path, port: int) -> None:
    """Stop the broker started from tmp_dir; does nothing if it is not running."""
    result = _run("down", Path(tmp_dir), port, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(
            f"tools/kafka/kafka.sh down failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
