"""The state benchmark: what a tracked credential costs, and how long a worker takes to get its
tables back.

Two parts. *fed*: a worker reads N issuances from its input topic through both agents, as in
production; that gives the per-credential RocksDB bytes, memory and changelog messages, and a
recovery of those. *million*: feeding a million issuances through one worker takes longer than a
benchmark should (the fed part gives the rate), so the million credentials' changelog is written
the way the worker writes it: the same ``Detector`` (``track_issuance`` on the first agent, then
``observe`` on the second, as streams/app/wiring.py calls them) over tables that behave like
Faust's (every write is a changelog message, JSON key and value, reads return copies, deletes are
tombstones). The fed part's changelog message count per credential is compared with it. Then a
worker with no local state recovers the tables from that changelog; recovery_s is the time from
its spawn to /readyz answering 200.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import msgspec

from bench import harness
from bench.generator import BASE_EPOCH, _sized, credential, ids_for, issuances, theft_record

# DetectorState field → Faust table name (streams/app/wiring.py).
TABLES = {
    "credentials": "instance_credentials",
    "instances": "instance_to_addresses",
    "network": "address_to_account",
    "findings": "finding_aggregates",
    "pending": "pending_calls",
    "clock": "partition_clock",
    "seen": "offending_event_ids",
}
_encode = msgspec.json.encode
_decode = msgspec.json.decode


def log(message: str) -> None:
    from bench.run import log as run_log

    run_log(message)


class ChangelogTable(MutableMapping):
    """A dict that writes its changelog as a Faust table does, and hands out copies."""

    def __init__(self, producer, topic: str) -> None:
        self.data: dict[str, bytes] = {}
        self.producer = producer
        self.topic = topic
        self.messages = 0

    def _send(self, key: str, value: bytes | None) -> None:
        while True:
            try:
                self.producer.produce(self.topic, key=_encode(key), value=value, partition=0)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.messages += 1
        if self.messages % 1000 == 0:
            self.producer.poll(0)

    def __getitem__(self, key: str) -> Any:
        return _decode(self.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        encoded = _encode(value)
        self.data[key] = encoded
        self._send(key, encoded)

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self._send(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data


def write_changelog(deployment: harness.Deployment, count: int, seed: int) -> dict[str, int]:
    """The changelog a worker writes for ``count`` issuances, written directly."""
    from streams.aws.ipranges import load_aws_ranges
    from streams.config.loader import load_config
    from streams.core.detector import Detector, DetectorState
    from streams.core.records import decode

    missing = {f.name for f in fields(DetectorState)} - TABLES.keys()
    if missing:
        raise RuntimeError(f"bench/state.py: DetectorState has fields {sorted(missing)} that "
                           "TABLES does not map to table names; update TABLES")
    loaded = load_config(str(deployment.config))
    # Faust's producer does not compress (producer_compression_type: None): neither does this.
    producer = harness.Producer({**deployment.settings.confluent(), "linger.ms": 20,
                                 "batch.size": 1_000_000, "acks": "all"})
    tables = {name: ChangelogTable(producer, f"{deployment.app_id}-{table}-changelog")
              for name, table in TABLES.items()}
    detector = Detector(loaded.detection, load_aws_ranges(loaded.detection),
                        DetectorState(**tables))
    for _, raw in issuances(count, seed=seed):
        issuance = decode(raw)
        detector.track_issuance(issuance)
        detector.observe(issuance, scope_instance=issuance.instance_id)
    remaining = producer.flush(300)
    if remaining:
        raise RuntimeError(f"{remaining} changelog messages not delivered")
    return {TABLES[name]: table.messages for name, table in tables.items()}


def changelog_messages(deployment: harness.Deployment) -> dict[str, int]:
    counts = {}
    for topic in deployment.topic_names():
        if topic.endswith("-changelog"):
            name = topic[len(deployment.app_id) + 1: -len("-changelog")]
            counts[name] = sum(deployment.high_watermarks(topic).values())
    return counts


def check_recovered(deployment: harness.Deployment, count: int, seed: int) -> bool:
    """A call from outside AWS with the middle credential's key: a finding proves the table
    holds it (an unknown key would wait for its issuance instead)."""
    c = credential(count // 2, seed=seed)
    ids = ids_for(99)
    record = theft_record(ids, BASE_EPOCH + 1800, c.instance_id, c.key, c.role, c.account,
                          c.role_id, "198.51.100.77")
    with harness.FindingWatcher(deployment) as watcher:
        time.sleep(1.0)
        harness.produce_all(deployment.settings, deployment.settings.topic_input,
                            [harness.Message(c.instance_id.encode(),
                                             _sized(ids.rng, ids, record), None, 0)])
        try:
            harness.wait_until(lambda: c.key in watcher.arrivals, timeout=60,
                               what="finding for a recovered credential")
            return True
        except TimeoutError:
            return False


def restarts(deployment: harness.Deployment, name: str, data_dir: Path) -> dict[str, Any]:
    """Restart with the local state kept, then with it deleted; seconds to /readyz each."""
    kept = deployment.start_worker(name, wait=False)
    kept_s = kept.wait_ready(timeout=3600)
    kept.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    recovered = deployment.start_worker(name, wait=False)
    recovery_s = recovered.wait_ready(timeout=3600)
    time.sleep(3)
    return {"kept_s": kept_s, "recovery_s": recovery_s, "worker": recovered,
            "rss": recovered.rss(), "rocksdb": harness.dir_bytes(recovered.data_dir)}


def fed(broker: harness.Broker, out: Path, count: int, seed: int = 7) -> dict[str, Any]:
    """Issuances through the worker's agents, as in production."""
    deployment = harness.Deployment(broker, out / "state-fed", 1, "f")
    try:
        worker = deployment.start_worker("w0")
        empty_s = time.monotonic() - worker.started
        time.sleep(2)
        rss_empty = worker.rss()
        data_empty = harness.dir_bytes(worker.data_dir)
        log(f"state: feeding {count:,} issuances through a worker")
        start = time.monotonic()
        harness.produce_all(
            deployment.settings, deployment.settings.topic_input,
            (harness.Message(key, value, None, 0) for key, value in issuances(count, seed=seed)))
        harness.wait_until(
            lambda: worker.metrics().get("exfilguard_detector_issuances", 0) >= count,
            timeout=max(1200, count / 50), every=1.0, what=f"{count} issuances tracked")
        load_s = time.monotonic() - start
        time.sleep(5)  # RocksDB writes and changelog sends settle
        rss_loaded = worker.rss()
        data_loaded = harness.dir_bytes(worker.data_dir)
        worker.stop()
        messages = changelog_messages(deployment)
        log(f"state: {count / load_s:,.0f} issuances/s; restarting")
        again = restarts(deployment, "w0", worker.data_dir)
        again["worker"].stop()
        return {
            "credentials": count,
            "issuances_per_s": round(count / load_s),
            "rocksdb_bytes_per_credential": round((data_loaded - data_empty) / count),
            "memory_bytes_per_credential": round((rss_loaded - rss_empty) / count),
            "changelog_messages": messages,
            "changelog_messages_per_credential": round(sum(messages.values()) / count, 2),
            "changelog_bytes_per_credential": round(
                broker.topic_bytes(f"{deployment.app_id}-", suffix="-changelog") / count),
            "recovery_s": round(again["recovery_s"], 2),
            "restart_with_local_state_s": round(again["kept_s"], 2),
            "first_start_empty_s": round(empty_s, 2),
            "worker_rss_bytes": {"empty": rss_empty, "loaded": rss_loaded,
                                 "recovered": again["rss"]},
        }
    finally:
        deployment.close()


def million(broker: harness.Broker, out: Path, count: int, seed: int = 7) -> dict[str, Any]:
    """A worker recovering ``count`` live credentials from their changelog."""
    deployment = harness.Deployment(broker, out / "state-million", 1, "m")
    try:
        worker = deployment.start_worker("w0")  # declares the topics; its state stays empty
        empty_s = time.monotonic() - worker.started
        time.sleep(2)
        rss_empty = worker.rss()
        data_empty = harness.dir_bytes(worker.data_dir)
        worker.stop()
        log(f"state: writing the changelog of {count:,} credentials")
        start = time.monotonic()
        written = write_changelog(deployment, count, seed)
        write_s = time.monotonic() - start
        changelog_bytes = broker.topic_bytes(f"{deployment.app_id}-", suffix="-changelog")
        log(f"state: {sum(written.values()):,} changelog messages in {write_s:.0f} s; "
            "recovering them")
        shutil.rmtree(worker.data_dir, ignore_errors=True)
        recovered = deployment.start_worker("w0", wait=False)
        recovery_s = recovered.wait_ready(timeout=3600)
        time.sleep(3)
        rss = recovered.rss()
        log(f"state: recovered in {recovery_s:.1f} s; checking a recovered credential")
        detected = check_recovered(deployment, count, seed)
        recovered.stop()
        rocksdb = harness.dir_bytes(recovered.data_dir)
        log("state: restart with the local state kept")
        kept = deployment.start_worker("w0", wait=False)
        kept_s = kept.wait_ready(timeout=3600)
        time.sleep(2)
        kept_rss = kept.rss()
        kept.stop()
        return {
            "credentials": count,
            "recovery_s": round(recovery_s, 2),
            "rocksdb_bytes_per_credential": round((rocksdb - data_empty) / count),
            "memory_bytes_per_credential": round((rss - rss_empty) / count),
            "changelog_messages": written,
            "changelog_messages_per_credential": round(sum(written.values()) / count, 2),
            "changelog_bytes_per_credential": round(changelog_bytes / count),
            "restart_with_local_state_s": round(kept_s, 2),
            "first_start_empty_s": round(empty_s, 2),
            "recovered_credential_detected": detected,
            "worker_rss_bytes": {"empty": rss_empty, "recovered": rss,
                                 "restarted_with_state": kept_rss},
            "rocksdb_bytes": {"empty": data_empty, "recovered": rocksdb},
        }
    finally:
        deployment.close()
