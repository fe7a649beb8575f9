"""A throwaway local broker, ``exfilguard worker`` subprocesses, and the clients that feed and
watch them: the same pieces the integration tests use (tests/integration/kafka_broker.py), with
measurement added (metrics sampling, RSS, data-dir size, readiness timing)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: F401 - re-exported

from streams.kafka.admin import admin, ensure_topics
from streams.kafka.forwarder import producer_config
from streams.kafka.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from kafka_broker import free_port, start_broker, stop_broker  # noqa: E402

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
from streams.kafka.batches import Message, is_batch, is_network_only, records_of  # noqa: E402


@dataclass(frozen=True)
class Pace:
    """The fixed pauses of a run: how long it lets a worker, a group or a consumer settle
    before it reads a figure, and how often it polls for "nothing changes any more". The full
    run's are these defaults; ``--quick`` (a check of the harness, not of the figures) takes
    QUICK_PACE's shorter ones."""

    settle_poll_s: float = 1.0  # drain: between readings of the calls judged, until equal
    drained_poll_s: float = 2.0  # capacity: between readings of the records, until equal
    capacity_min_s: float = 5.0  # capacity: the shortest run feeding the worker
    watcher_start_s: float = 1.0  # a FindingWatcher's consumer fetching before a measure
    group_settle_s: float = 3.0  # scaling: the group settles, one partition each
    started_settle_s: float = 2.0  # state: a worker started, before its RSS is read
    writes_settle_s: float = 5.0  # state: RocksDB writes and changelog sends settle
    recovered_settle_s: float = 3.0  # state: a worker recovered, before its RSS is read


FULL_PACE = Pace()
QUICK_PACE = Pace(settle_poll_s=0.5, drained_poll_s=1.0, capacity_min_s=2.5,
                  watcher_start_s=0.5, group_settle_s=1.0, started_settle_s=0.5,
                  writes_settle_s=1.0, recovered_settle_s=0.5)


def log(message: str) -> None:
    """One progress line of the benchmark on stderr (stdout carries its table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def records_in(message: Message) -> int:
    """Records a message carries: a batch's lines, else one."""
    return sum(1 for _ in records_of(message.value, message.headers))


def records_once(messages: list[Message], partitions: int) -> int:
    """What the workers' ``exfilguard_records_total`` reaches for these messages: a record sent
    to several partitions (address changes, lifecycle events) counts once, as the worker counts."""
    from streams.core.records import MalformedRecord, decode_record, unwrap
    from streams.kafka.routing import counted_here, route_of_event

    total = 0
    for message in messages:
        batched, network_only = is_batch(message.headers), is_network_only(message.headers)
        for _, raw in records_of(message.value, message.headers):
            try:
                parsed, record = decode_record(raw)
            except MalformedRecord:
                total += 1
                continue
            if parsed is None and record is None:
                total += 1  # skipped undecoded: one copy
                continue
            # An AssumeRole minting a key has a copy on the signer's and the child's partition.
            route = route_of_event(parsed, record if parsed is not None else unwrap(record))
            total += counted_here(route, message.partition or 0, partitions, batched,
                                  message.key, network_only)
    return total


class Broker:
    """A single-node KRaft broker with its files under ``folder``; stopped on exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.bootstrap = ""

    def __enter__(self) -> Broker:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.bootstrap = start_broker(self.folder, self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_broker(self.folder, self.port)

    def topic_bytes(self, prefix: str, suffix: str = "") -> int:
        """Bytes on disk of the partitions of the topics named ``prefix…suffix``."""
        total = 0
        data = self.folder / "data"
        for part in data.iterdir() if data.is_dir() else []:
            topic = part.name.rsplit("-", 1)[0]
            if part.is_dir() and topic.startswith(prefix) and topic.endswith(suffix):
                # .log only: Kafka preallocates the active segment's index files (10 MB each)
                total += sum(f.stat().st_size for f in part.glob("*.log"))
        return total


def dir_bytes(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _web_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    web_port: int
    data_dir: Path
    log_path: Path
    started: float  # monotonic, at spawn

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 600) -> float:
        """Seconds from spawn until /readyz answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited {self.process.returncode}:\n"
                                   f"{self.log_path.read_text(errors='replace')[-3000:]}")
            if self.ready():
                return time.monotonic() - self.started
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready in {timeout} s:\n"
                           f"{self.log_path.read_text(errors='replace')[-3000:]}")

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url("/metrics"), timeout=10) as response:
            text = response.read().decode()
        return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                if line and not line.startswith("#")}

    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    def stop(self, timeout: float = 120) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Deployment:
    """One exfilguard deployment on the broker: its own topics, consumer group and workers."""

    def __init__(self, broker: Broker, folder: Path, partitions: int, label: str) -> None:
        name = f"b{label}{uuid.uuid4().hex[:6]}"
        self.broker = broker
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.partitions = partitions
        self.app_id = f"exfilguard-{name}"
        self.settings = KafkaSettings(
            bootstrap_servers=broker.bootstrap, topic_input=f"{name}-cloudtrail",
            topic_findings=f"{name}-findings", topic_dlq=f"{name}-dlq",
            partitions=partitions, app_id=self.app_id)
        self.config = folder / "config.yaml"
        self.config.write_text("finding_update_interval_seconds: 0\n")
        self.env = {
            **os.environ,
            "EXFILGUARD_BOOTSTRAP_SERVERS": broker.bootstrap,
            "EXFILGUARD_APP_ID": self.app_id,
            "EXFILGUARD_TOPIC_INPUT": self.settings.topic_input,
            "EXFILGUARD_TOPIC_FINDINGS": self.settings.topic_findings,
            "EXFILGUARD_TOPIC_DLQ": self.settings.topic_dlq,
            "EXFILGUARD_PARTITIONS": str(partitions),
        }
        self.workers: list[Worker] = []
        self.worker_command = [EXFILGUARD]  # what runs ``exfilguard``: experiments wrap it
        ensure_topics(self.settings)

    def start_worker(self, name: str = "w0", wait: bool = True) -> Worker:
        port = _web_port()
        data = self.folder / name
        log_path = self.folder / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [*self.worker_command, "worker", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT,
            env={**self.env, "EXFILGUARD_DATA_DIR": str(data),
                 "EXFILGUARD_WEB_PORT": str(port)})
        log.close()
        worker = Worker(name, process, port, data, log_path, time.monotonic())
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()

    def high_watermarks(self, topic: str) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.broker.bootstrap,
                             "group.id": f"bench-watermarks-{uuid.uuid4().hex[:6]}"})
        try:
            meta = consumer.list_topics(topic, timeout=10)
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in meta.topics[topic].partitions}
        finally:
            consumer.close()

    def topic_names(self) -> list[str]:
        meta = admin(self.settings).list_topics(timeout=10)
        return sorted(name for name in meta.topics if name.startswith(self.app_id))


def producer(settings: KafkaSettings) -> Producer:
    """A producer with the forwarder's own configuration (acks=all, idempotent, zstd, 20 ms)."""
    return Producer(producer_config(settings))


def produce_all(settings: KafkaSettings, topic: str, messages: Iterable[Message]) -> int:
    """Produce as fast as the client takes them; returns the count, raises if any failed."""
    client = producer(settings)
    failed: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            failed.append(err.str())

    count = 0
    for key, value, partition, timestamp, headers in messages:
        kwargs = {"partition": partition} if partition is not None else {}
        if headers:
            kwargs["headers"] = headers
        while True:
            try:
                client.produce(topic, value=value, key=key, timestamp=timestamp,
                               on_delivery=delivered, **kwargs)
                break
            except BufferError:
                client.poll(0.05)
        count += 1
        if count % 1000 == 0:
            client.poll(0)
    remaining = client.flush(300)
    if remaining or failed:
        raise RuntimeError(f"{remaining} undelivered, {len(failed)} failed: {failed[:3]}")
    return count


@dataclass
class Sampler:
    """Polls the workers' /metrics every ``every`` seconds in a thread."""

    workers: list[Worker]
    every: float = 0.25
    samples: list[tuple[float, list[dict[str, float]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                values = [w.metrics() for w in self.workers]
            except OSError:
                values = None
            if values is not None:
                self.samples.append((now, values))
            self._stop.wait(self.every)

    def total(self, name: str) -> list[tuple[float, float]]:
        return [(t, sum(v.get(name, 0.0) for v in values)) for t, values in self.samples]


def wait_until(predicate, timeout: float, every: float = 0.25, what: str = "condition") -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(every)
    raise TimeoutError(f"{what} not reached in {timeout:.0f} s")


def crossing(series: list[tuple[float, float]], level: float) -> float | None:
    """The time the series first reaches ``level``, interpolated between samples."""
    previous = None
    for t, v in series:
        if v >= level:
            if previous is None or v == previous[1]:
                return t
            t0, v0 = previous
            return t0 + (level - v0) * (t - t0) / (v - v0)
        previous = (t, v)
    return None


class FindingWatcher:
    """Reads the findings topic from its current end in a thread; first arrival per access key."""

    def __init__(self, deployment: Deployment) -> None:
        from streams.kafka.codec import decode_finding

        self._decode = decode_finding
        self.topic = deployment.settings.topic_findings
        self.arrivals: dict[str, float] = {}
        self.messages = 0
        ends = deployment.high_watermarks(self.topic)
        self.consumer = Consumer({"bootstrap.servers": deployment.broker.bootstrap,
                                  "group.id": f"bench-findings-{uuid.uuid4().hex[:6]}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        self.consumer.assign([TopicPartition(self.topic, p, o) for p, o in ends.items()])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FindingWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.consumer.poll(0.05)
            if message is None or message.error():
                continue
            now = time.monotonic()
            self.messages += 1
            try:
                finding = self._decode(message.value() or b"")
                key = finding["resource"]["accessKeyDetails"]["accessKeyId"]
            except Exception:  # noqa: BLE001 - a finding we cannot read is not ours
                continue
            self.arrivals.setdefault(key, now)


def chunks(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
