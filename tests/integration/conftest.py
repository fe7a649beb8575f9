"""A real local Kafka broker for the integration tests (started here, stopped at the end), and
``exfilguard worker`` run as a subprocess, the way users run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kafka_broker import free_port, start_broker, stop_broker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kafka")
    port = free_port()
    bootstrap = start_broker(folder, port)
    yield bootstrap
    stop_broker(folder, port)


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deployment:
    """One isolated exfilguard deployment on the shared broker: its own topics and group."""

    def __init__(self, bootstrap: str, folder: Path, partitions: int = 3, **env: str) -> None:
        name = f"t{uuid.uuid4().hex[:8]}"
        self.folder = folder
        self.env = {
            **os.environ,
            "EXFILGUARD_BOOTSTRAP_SERVERS": bootstrap,
            "EXFILGUARD_APP_ID": f"exfilguard-{name}",
            "EXFILGUARD_TOPIC_INPUT": f"{name}-cloudtrail",
            "EXFILGUARD_TOPIC_FINDINGS": f"{name}-findings",
            "EXFILGUARD_TOPIC_DLQ": f"{name}-dlq",
            "EXFILGUARD_PARTITIONS": str(partitions),
            **env,
        }
        self.workers: list[subprocess.Popen] = []

    def exfilguard(self, *args: str, timeout: float = 120, **env: str,
                   ) -> subprocess.CompletedProcess:
        return subprocess.run([EXFILGUARD, *args], env={**self.env, **env}, capture_output=True,
                              timeout=timeout, check=False)

    def start_worker(self, name: str = "w0", config: str | None = None) -> subprocess.Popen:
        port = _port()
        data = self.folder / name
        # Appended: a worker restarted under its name keeps the log of the one before.
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        args = [EXFILGUARD, "worker"] + (["--config", config] if config else [])
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT,
            env={**self.env, "EXFILGUARD_DATA_DIR": str(data), "EXFILGUARD_WEB_PORT": str(port)})
        process.web_port = port  # type: ignore[attr-defined]
        process.log_path = self.folder / f"{name}.log"  # type: ignore[attr-defined]
        self.workers.append(process)
        self.wait_ready(process)
        return process

    def wait_ready(self, process: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"worker exited {process.returncode}:\n"
                                     f"{process.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{process.web_port}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready in {timeout}s:\n"
                             f"{process.log_path.read_text()[-3000:]}")

    def metrics(self, process: subprocess.Popen) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.web_port}/metrics",
                                    timeout=5) as response:
            text = response.read().decode()
        series = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                  for line in text.splitlines() if line and not line.startswith("#")}
        # A labelled family's sum under its bare name too: name{reason="..."} → name.
        for name, value in list(series.items()):
            if "{" in name:
                family = name.split("{", 1)[0]
                series[family] = series.get(family, 0.0) + value
        return series

    def stop_worker(self, process: subprocess.Popen, timeout: float = 60) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def close(self) -> None:
        for process in self.workers:
            self.stop_worker(process)

    def through_the_end(self, *args: str, group: str, timeout: float = 60,
                        **env: str) -> subprocess.CompletedProcess:
        """``exfilguard ARGS``, a command reading the findings topic in consumer ``group`` (a
        ``notify`` or ``respond --from-topic``), until the group has a member and has committed
        every message now on the topic (each is delivered before its offset commits); then it
        is stopped with SIGTERM, as an operator stops it. Unlike an idle ``--timeout`` it cannot
        stop before it has read them, and it does not wait out the idle seconds."""
        from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition
        from confluent_kafka.admin import AdminClient

        bootstrap, topic = self.env["EXFILGUARD_BOOTSTRAP_SERVERS"], self.env[
            "EXFILGUARD_TOPIC_FINDINGS"]
        wanted = {p: end for p, end in topic_ends(bootstrap, topic).items() if end}
        admin = AdminClient({"bootstrap.servers": bootstrap})

        def joined() -> bool:
            [described] = admin.describe_consumer_groups([group]).values()
            description = described.result(timeout=10)
            return description.state == ConsumerGroupState.STABLE and bool(description.members)

        run = self.folder / f"run-{uuid.uuid4().hex[:6]}"
        command = [EXFILGUARD, *args]
        with open(f"{run}.out", "wb") as out, open(f"{run}.err", "wb") as err:
            process = subprocess.Popen(command, env={**self.env, **env}, stdout=out, stderr=err)
        offsets = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                            "enable.auto.commit": False})  # reads the group's offsets only
        try:
            deadline = time.monotonic() + timeout
            while process.poll() is None:
                committed = offsets.committed([TopicPartition(topic, p) for p in wanted],
                                              timeout=10)
                if all(tp.offset >= wanted[tp.partition] for tp in committed) and joined():
                    process.send_signal(signal.SIGTERM)
                    break
                if time.monotonic() > deadline:
                    process.kill()
                    break
                time.sleep(0.2)
            process.wait(60)
        finally:
            offsets.close()
        return subprocess.CompletedProcess(command, process.returncode,
                                           Path(f"{run}.out").read_bytes(),
                                           Path(f"{run}.err").read_bytes())


def topic_ends(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end (high watermark) on ``topic`` now."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
    finally:
        consumer.close()


def read_to_end(bootstrap: str, topic: str, timeout: float = 30) -> list:
    """Every message on ``topic`` now: each partition read from its start to the end it had
    when the read began (no waiting for the topic to go quiet)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        bounds = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                  for p in partitions}
        wanted = {p: high for p, (low, high) in bounds.items() if high > low}
        consumer.assign([TopicPartition(topic, p, bounds[p][0]) for p in wanted])
        messages, deadline = [], time.monotonic() + timeout
        while wanted and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            messages.append(message)
            if message.offset() + 1 >= wanted.get(message.partition(), 0):
                wanted.pop(message.partition(), None)
        assert not wanted, f"{topic} not read to its end in {timeout} s: {wanted}"
        return messages
    finally:
        consumer.close()


@pytest.fixture
def deployment(broker, tmp_path):
    created = []

    def make(**kwargs) -> Deployment:
        d = Deployment(broker, tmp_path, **kwargs)
        created.append(d)
        return d

    yield make
    for d in created:
        d.close()


@pytest.fixture
def moto_env():
    """moto's server on a free loopback port, and the environment that points boto3 at it."""
    moto_server = pytest.importorskip("moto.server")
    port = _port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto's backends live in this process, shared by every server it starts: begin empty, or
    # findings another test imported (tests/aws) are there too.
    urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{port}/moto-api/reset", method="POST"), timeout=30).close()
    yield {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    server.stop()
