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

import random
import shutil
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import msgspec

from bench import harness
from bench.generator import BASE_EPOCH, credential, ids_for, issuances, sized, theft_record
from bench.harness import log
from streams.app.state import STATE_TABLE, Section
from streams.core.detector import DetectorState

# The core's tables, by DetectorState field: sections of the worker's one table, each under its
# field's name (streams/app/state.py).
TABLES = {f.name: f.name for f in fields(DetectorState)}
_encode = msgspec.json.encode
_decode = msgspec.json.decode


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

    loaded = load_config(str(deployment.config))
    # Faust's producer does not compress (producer_compression_type: None): neither does this.
    producer = harness.Producer({**deployment.settings.confluent(), "linger.ms": 20,
                                 "batch.size": 1_000_000, "acks": "all"})
    # DetectorState's fields are sections of the worker's one core table (streams/app/state.py).
    tables = {STATE_TABLE: ChangelogTable(producer,
                                          f"{deployment.app_id}-{STATE_TABLE}-changelog")}
    detector = Detector(loaded.detection, load_aws_ranges(loaded.detection), DetectorState(
        **{f.name: Section(tables[STATE_TABLE], f.name) for f in fields(DetectorState)}))
    for _, raw in issuances(count, seed=seed):
        issuance = decode(raw)
        detector.track_issuance(issuance)
        detector.observe(issuance, scope_instance=issuance.instance_id)
    remaining = producer.flush(300)
    if remaining:
        raise RuntimeError(f"{remaining} changelog messages not delivered")
    return {name: table.messages for name, table in tables.items()}


def changelog_messages(deployment: harness.Deployment) -> dict[str, int]:
    counts = {}
    for topic in deployment.topic_names():
        if topic.endswith("-changelog"):
            name = topic[len(deployment.app_id) + 1: -len("-changelog")]
            counts[name] = sum(deployment.high_watermarks(topic).values())
    return counts


def check_recovered(deployment: harness.Deployment, count: int, seed: int,
                    pace: harness.Pace = harness.FULL_PACE) -> bool:
    """A call from outside AWS with the middle credential's key: a finding proves the table
    holds it (an unknown key would wait for its issuance instead)."""
    c = credential(count // 2, seed=seed)
    ids = ids_for(99)
    record = theft_record(ids, BASE_EPOCH + 1800, c.instance_id, c.key, c.role, c.account,
                          c.role_id, "198.51.100.77")
    with harness.FindingWatcher(deployment) as watcher:
        time.sleep(pace.watcher_start_s)
        harness.produce_all(deployment.settings, deployment.settings.topic_input,
                            [harness.Message(c.instance_id.encode(),
                                             sized(ids.rng, ids, record), None, 0)])
        try:
            harness.wait_until(lambda: c.key in watcher.arrivals, timeout=60,
                               what="finding for a recovered credential")
            return True
        except TimeoutError:
            return False


def restarts(deployment: harness.Deployment, name: str, data_dir: Path,
             pace: harness.Pace = harness.FULL_PACE) -> dict[str, Any]:
    """Restart with the local state kept, then with it deleted; seconds to /readyz each."""
    kept = deployment.start_worker(name, wait=False)
    kept_s = kept.wait_ready(timeout=3600)
    kept.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    recovered = deployment.start_worker(name, wait=False)
    recovery_s = recovered.wait_ready(timeout=3600)
    time.sleep(pace.recovered_settle_s)
    return {"kept_s": kept_s, "recovery_s": recovery_s, "worker": recovered,
            "rss": recovered.rss(), "rocksdb": harness.dir_bytes(recovered.data_dir)}


def fed(broker: harness.Broker, out: Path, count: int, seed: int = 7,
        pace: harness.Pace = harness.FULL_PACE) -> dict[str, Any]:
    """Issuances through the worker's agents, as in production."""
    deployment = harness.Deployment(broker, out / "state-fed", 1, "f")
    try:
        worker = deployment.start_worker("w0")
        empty_s = time.monotonic() - worker.started
        time.sleep(pace.started_settle_s)
        rss_empty = worker.rss()
        data_empty = harness.dir_bytes(worker.data_dir)
        log(f"state: feeding {count:,} issuances through a worker")
        start = time.monotonic()
        harness.produce_all(
            deployment.settings, deployment.settings.topic_input,
            (harness.Message(key, value, None, 0) for key, value in issuances(count, seed=seed)))
        harness.wait_until(
            lambda: worker.metrics().get("exfilguard_issuances_total", 0) >= count,
            timeout=max(1200, count / 50), every=1.0, what=f"{count} issuances tracked")
        load_s = time.monotonic() - start
        time.sleep(pace.writes_settle_s)  # RocksDB writes and changelog sends settle
        rss_loaded = worker.rss()
        data_loaded = harness.dir_bytes(worker.data_dir)
        worker.stop()
        messages = changelog_messages(deployment)
        log(f"state: {count / load_s:,.0f} issuances/s; restarting")
        again = restarts(deployment, "w0", worker.data_dir, pace)
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


def million(broker: harness.Broker, out: Path, count: int, seed: int = 7,
            pace: harness.Pace = harness.FULL_PACE) -> dict[str, Any]:
    """A worker recovering ``count`` live credentials from their changelog."""
    deployment = harness.Deployment(broker, out / "state-million", 1, "m")
    try:
        worker = deployment.start_worker("w0")  # declares the topics; its state stays empty
        empty_s = time.monotonic() - worker.started
        time.sleep(pace.started_settle_s)
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
        time.sleep(pace.recovered_settle_s)
        rss = recovered.rss()
        log(f"state: recovered in {recovery_s:.1f} s; checking a recovered credential")
        detected = check_recovered(deployment, count, seed, pace)
        recovered.stop()
        rocksdb = harness.dir_bytes(recovered.data_dir)
        log("state: restart with the local state kept")
        kept = deployment.start_worker("w0", wait=False)
        kept_s = kept.wait_ready(timeout=3600)
        time.sleep(pace.started_settle_s)
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


# -- a year of one organisation ------------------------------------------------------------------


@dataclass(frozen=True)
class YearShape:
    """An organisation's instance traffic: every live instance gets a new key each hour and
    calls from its own address; instances end and are replaced (some with no TerminateInstances
    in the trail); now and then a key is stolen. Each account allocates elastic IPs (some
    associated with an instance, which then calls from it) and releases its oldest unused one,
    and replaces its NAT gateway now and then on a new elastic IP, releasing the old one."""

    days: int = 365
    instances: int = 25
    calls_per_hour: int = 2
    mean_lifetime_days: float = 10.0
    thefts_per_week: int = 3
    calls_per_theft: int = 120
    redelivered_per_theft: int = 10  # CloudTrail's duplicates, same event id
    warmup_days: int = 3
    vanished_share: float = 0.2  # of ending instances, none of whose end the trail shows
    eips_per_account: int = 3  # unused elastic IPs an account keeps before releasing the oldest
    eips_allocated_per_day: float = 2.0  # per account
    nat_replaced_every_days: float = 7.0  # per account: a new gateway on a new elastic IP


QUICK_YEAR = YearShape(days=30, instances=10)


def year_records(shape: YearShape, seed: int = 7) -> Iterator[bytes]:
    """The organisation's instance records, hour by hour in event-time order, as JSON."""
    from bench.generator import (
        ATTACKER_IPS,
        EC2_PREFIXES,
        ROLES,
        Organisation,
        _assumed_role,
        _base,
        _Ids,
        encode,
        issuance_record,
    )

    rng = random.Random(seed)
    ids = _Ids(rng)
    org = Organisation(random.Random(seed), instances=0)
    live: list[dict[str, Any]] = []
    # The address churn draws from its own generator: the instances' traffic is as before.
    churn = _AddressChurn(org, random.Random(seed + 1), shape)

    def launch() -> dict[str, Any]:
        account = rng.choice(org.accounts)
        role = rng.choice(ROLES)
        return {"id": ids.instance(), "account": account, "role": role,
                "role_id": org.role_ids[(account, role)],
                "ip": ids.ip(rng.choice(EC2_PREFIXES)), "key": None, "issued": 0.0}

    live = [launch() for _ in range(shape.instances)]
    end_probability = 1 / (shape.mean_lifetime_days * 24)
    theft_probability = shape.thefts_per_week / (7 * 24)
    for hour in range(shape.days * 24):
        start = BASE_EPOCH + hour * 3600
        out: list[tuple[float, bytes]] = []
        for instance in list(live):
            at = start + rng.uniform(0, 60)
            instance["key"], instance["issued"] = ids.key(), at
            out.append((at, encode(issuance_record(
                ids, at, instance["id"], instance["key"], instance["role"],
                instance["account"], instance["role_id"]))))
            for _ in range(shape.calls_per_hour):
                when = at + rng.uniform(60, 3500)
                identity = _assumed_role(org, instance["account"], instance["role"],
                                         instance["role_id"], instance["id"], instance["key"],
                                         at, delivery="2.0")
                out.append((when, encode(_base(ids, when, instance["account"], identity,
                                               "s3:GetObject", instance["ip"],
                                               "aws-sdk-go/1.44"))))
            if rng.random() < end_probability:
                when = start + rng.uniform(3000, 3590)
                identity = _assumed_role(org, instance["account"], "terraform-deployer",
                                         instance["role_id"], "terraform-run", ids.key(),
                                         when - 600)
                record = _base(ids, when, instance["account"], identity,
                               "ec2:TerminateInstances", "198.51.100.20", "terraform/1.7")
                record["requestParameters"] = {
                    "instancesSet": {"items": [{"instanceId": instance["id"]}]}}
                if not churn.vanishes():  # else the trail misses its end
                    out.append((when, encode(record)))
                out += churn.instance_ended(instance, when)
                live.remove(instance)
                live.append(launch())
        out += churn.hour(start, live)
        if rng.random() < theft_probability:
            victim = rng.choice(live)
            attacker = rng.choice(ATTACKER_IPS)
            calls = []
            for _ in range(shape.calls_per_theft):
                when = start + rng.uniform(120, 3500)
                identity = _assumed_role(org, victim["account"], victim["role"],
                                         victim["role_id"], victim["id"], victim["key"],
                                         victim["issued"], delivery="2.0")
                calls.append((when, encode(_base(ids, when, victim["account"], identity,
                                                 "s3:ListBuckets", attacker, "curl/8.4"))))
            out += calls + rng.sample(calls, shape.redelivered_per_theft)
        out.sort(key=lambda item: item[0])
        for _, raw in out:
            yield raw


class _AddressChurn:
    """Each account's elastic IPs and NAT gateways over the year, as Terraform writes them."""

    def __init__(self, org: Any, rng: random.Random, shape: YearShape) -> None:
        from bench.generator import _Ids

        self.org, self.rng, self.shape = org, rng, shape
        self.ids = _Ids(rng)
        self.unused: dict[str, list[tuple[str, str]]] = {a: [] for a in org.accounts}
        self.gateways: dict[str, tuple[str, str, str] | None] = {a: None for a in org.accounts}

    def vanishes(self) -> bool:
        return self.rng.random() < self.shape.vanished_share

    def _record(self, when: float, account: str, name: str, request: Any,
                response: Any) -> tuple[float, bytes]:
        from bench.generator import _assumed_role, _base, encode

        role = "terraform-deployer"
        identity = _assumed_role(self.org, account, role, self.org.role_ids[(account, "web-role")],
                                 "terraform-run", self.ids.key(), when - 600)
        record = _base(self.ids, when, account, identity, f"ec2:{name}", "198.51.100.20",
                       "terraform/1.7")
        record.update(requestParameters=request, responseElements=response, readOnly=False)
        return when, encode(record)

    def _allocate(self, when: float, account: str, logged: bool = True
                  ) -> tuple[tuple[str, str], list[tuple[float, bytes]]]:
        from bench.generator import EC2_PREFIXES

        eip = ("eipalloc-0" + self.ids.hex(16), self.ids.ip(self.rng.choice(EC2_PREFIXES)))
        if not logged:  # allocated before the trail began
            return eip, []
        return eip, [self._record(when, account, "AllocateAddress", {"domain": "vpc"}, {
            "requestId": self.ids.uuid(), "publicIp": eip[1], "domain": "vpc",
            "allocationId": eip[0], "publicIpv4Pool": "amazon",
            "networkBorderGroup": "us-east-1"})]

    def _release(self, when: float, account: str, eip: tuple[str, str]) -> tuple[float, bytes]:
        return self._record(when, account, "ReleaseAddress", {"allocationId": eip[0]},
                            {"requestId": self.ids.uuid(), "_return": True})

    def hour(self, start: float, live: list[dict[str, Any]]) -> list[tuple[float, bytes]]:
        out: list[tuple[float, bytes]] = []
        for account in self.org.accounts:
            if self.rng.random() < self.shape.eips_allocated_per_day / 24:
                when = start + self.rng.uniform(0, 3000)
                eip, records = self._allocate(when, account)
                out += records
                free = [i for i in live if i["account"] == account and "eip" not in i]
                if free and self.rng.random() < 0.5:  # associated: the instance calls from it
                    instance = self.rng.choice(free)
                    association = "eipassoc-0" + self.ids.hex(16)
                    out.append(self._record(when + 5, account, "AssociateAddress", {
                        "allocationId": eip[0], "instanceId": instance["id"],
                        "allowReassociation": False}, {"requestId": self.ids.uuid(),
                                                       "_return": True,
                                                       "associationId": association}))
                    instance["eip"], instance["ip"] = (*eip, association), eip[1]
                else:
                    self.unused[account].append(eip)
                while len(self.unused[account]) > self.shape.eips_per_account:
                    out.append(self._release(when + 10, account, self.unused[account].pop(0)))
            if (self.gateways[account] is None
                    or self.rng.random() < 1 / (self.shape.nat_replaced_every_days * 24)):
                out += self._replace_gateway(start + self.rng.uniform(0, 3000), account)
        return out

    def _replace_gateway(self, when: float, account: str) -> list[tuple[float, bytes]]:
        # Half the gateways' elastic IPs were allocated before the trail: only the gateway's
        # response pairs the allocation with its address.
        eip, out = self._allocate(when, account, logged=self.rng.random() < 0.5)
        gateway = "nat-0" + self.ids.hex(16)
        subnet = "subnet-0" + self.ids.hex(16)
        out.append(self._record(when + 5, account, "CreateNatGateway", {
            "CreateNatGatewayRequest": {"SubnetId": subnet, "AllocationId": eip[0],
                                        "ConnectivityType": "public"}}, {
            "CreateNatGatewayResponse": {"requestId": self.ids.uuid(), "natGateway": {
                "natGatewayAddressSet": {"item": {"allocationId": eip[0], "publicIp": eip[1],
                                                  "isPrimary": True, "status": "succeeded"}},
                "natGatewayId": gateway, "state": "pending", "subnetId": subnet,
                "connectivityType": "public"}}}))
        old = self.gateways[account]
        self.gateways[account] = (gateway, *eip)
        if old is not None:
            out.append(self._record(when + 600, account, "DeleteNatGateway", {
                "DeleteNatGatewayRequest": {"NatGatewayId": old[0]}}, {
                "DeleteNatGatewayResponse": {"requestId": self.ids.uuid(),
                                             "natGatewayId": old[0]}}))
            out.append(self._release(when + 900, account, old[1:]))
        return out

    def instance_ended(self, instance: dict[str, Any], when: float
                       ) -> list[tuple[float, bytes]]:
        """An ended instance's elastic IP is disassociated (still the account's): unused."""
        if "eip" not in instance:
            return []
        allocation, ip, association = instance["eip"]
        self.unused[instance["account"]].append((allocation, ip))
        return [self._record(when + 5, instance["account"], "DisassociateAddress",
                             {"associationId": association},
                             {"requestId": self.ids.uuid(), "_return": True})]


def year(shape: YearShape = YearShape(), seed: int = 7) -> dict[str, Any]:
    """The detector over a year of the organisation's records, as the worker calls it; every
    table's entries and JSON bytes sampled each day."""
    from streams.aws.ipranges import load_aws_ranges
    from streams.core.detector import Detector, DetectorState
    from streams.core.records import Issuance, decode
    from streams.core.settings import parse_config

    config = parse_config({"finding_update_interval_seconds": 0})
    state = DetectorState()
    detector = Detector(config, load_aws_ranges(config), state)
    samples: list[dict[str, Any]] = []
    next_day = BASE_EPOCH * 1000 + 86_400_000
    records = findings = 0
    started = time.monotonic()

    def sample(day: int) -> None:
        sizes = {}
        for name, table in TABLES.items():
            mapping = getattr(state, name)
            sizes[table] = {"entries": len(mapping),
                            "bytes": sum(len(_encode(k)) + len(_encode(v))
                                         for k, v in mapping.items())}
        samples.append({"day": day, **sizes})

    for raw in year_records(shape, seed):
        event = decode(raw)
        if event is None:
            continue
        records += 1
        while event.event_time >= next_day:
            sample(len(samples) + 1)
            next_day += 86_400_000
        if isinstance(event, Issuance):
            detector.track_issuance(event)
        findings += len(detector.observe(event))
    sample(len(samples) + 1)
    elapsed = time.monotonic() - started
    after = samples[shape.warmup_days:]
    tables = {}
    for table in TABLES.values():
        entries = [s[table]["entries"] for s in after]
        size = [s[table]["bytes"] for s in after]
        tables[table] = {
            "entries_after_warmup": {"min": min(entries), "max": max(entries),
                                     "last": entries[-1]},
            "bytes_after_warmup": {"min": min(size), "max": max(size), "last": size[-1]},
            # Flat: the last quarter holds no more than the second (a growing table doubles).
            "entries_by_quarter_max": [max(entries[i * len(entries) // 4:
                                                   (i + 1) * len(entries) // 4] or [0])
                                       for i in range(4)],
        }
    return {
        "days": shape.days, "live_instances": shape.instances,
        "records": records, "findings_changed": findings,
        "offending_calls_counted": detector.counters.findings_new
        + detector.counters.findings_updated,
        "network_changes": detector.counters.network_changes,
        "seconds": round(elapsed, 1), "warmup_days": shape.warmup_days,
        "shape": {k: v for k, v in vars(shape).items()},
        "tables": tables,
        "weekly": [s for s in samples if s["day"] % 7 == 0],
    }


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.state",
                                     description="The year of state: every table's size over "
                                                 "a simulated year, into bench/results.json "
                                                 "under state.year (--quick: 30 days, printed)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--days", type=int)
    parser.add_argument("--output", help="results file (default bench/results.json; quick: "
                                         "bench/out/state-year-quick.json)")
    args = parser.parse_args(argv)
    shape = QUICK_YEAR if args.quick else YearShape()
    if args.days:
        shape = YearShape(**{**vars(shape), "days": args.days})
    result = year(shape)
    for table, figures in result["tables"].items():
        entries = figures["entries_after_warmup"]
        print(f"{table:24} entries after warm-up {entries['min']:>7,} .. {entries['max']:>7,}"
              f"  (by quarter, max {figures['entries_by_quarter_max']})")
    print(f"{result['records']:,} records over {result['days']} days in {result['seconds']} s")
    root = Path(__file__).resolve().parent
    output = Path(args.output) if args.output else (
        root / "out" / "state-year-quick.json" if args.quick else root / "results.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(output.read_text()) if output.exists() else {}
    results.setdefault("state", {})["year"] = result
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {output} (state.year)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
