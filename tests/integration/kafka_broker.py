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


CLUSTER_SH = ROOT / "tools" / "kafka" / "cluster.sh"


class Cluster:
    """A three-node local cluster (tools/kafka/cluster.sh) with its nodes in ``folder``."""

    def __init__(self, folder: Path, ports: list[int]) -> None:
        self.folder = Path(folder)
        self.ports = ports
        self.bootstrap = ",".join(f"127.0.0.1:{port}" for port in ports)

    def _run(self, *args: str, timeout: float = 600) -> str:
        env = dict(os.environ, KAFKA_CLUSTER_DIR=str(self.folder),
                   KAFKA_CLUSTER_PORTS=",".join(map(str, self.ports)))
        env.setdefault("PYTHON", sys.executable)
        result = subprocess.run([str(CLUSTER_SH), *args], env=env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"tools/kafka/cluster.sh {' '.join(args)} failed "
                               f"(exit {result.returncode}):\n{result.stdout}{result.stderr}")
        return result.stdout

    def up(self, *nodes: int) -> None:
        self._run("up", *map(str, nodes))

    def down(self, *nodes: int) -> None:
        self._run("down", *map(str, nodes), timeout=180)

    def kill(self, *nodes: int) -> None:
        self._run("kill", *map(str, nodes))

    def logs(self) -> list[Path]:
        return sorted(self.folder.glob("node-*/logs/*"))


def start_cluster(folder: Path) -> Cluster:
    """Three nodes on free ports, answering once this returns."""
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port()
        if not {port - 1, port, port + 1} & set(ports):
            ports.append(port)
    cluster = Cluster(folder, ports)
    cluster.up()
    return cluster
