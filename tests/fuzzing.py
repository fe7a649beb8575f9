"""Seeded fuzzing of the two record paths: ``detect`` (a file's bytes → findings printed) and the
worker's (a message's records → tables → findings encoded), over mutated real records and the
hostile shapes of issue 11. Only MalformedRecord may come out; anything else is a crash.

    python tests/fuzzing.py --inputs 1000000 --seed 1      (make fuzz)
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import signal
import sys
import time
import traceback
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.aws.ipranges import load_ip_ranges  # noqa: E402
from streams.core.detector import Detector, DetectorState  # noqa: E402
from streams.core.records import ApiCall, Issuance, MalformedRecord, decode, decode_record  # noqa: E402
from streams.core.settings import parse_config  # noqa: E402
from streams.kafka.batches import BATCHED, records_of  # noqa: E402
from streams.kafka.codec import finding_codec  # noqa: E402
from streams.kafka.routing import copies_on, partitions_of, route_of_event  # noqa: E402
from streams.kafka.settings import KafkaSettings  # noqa: E402
from streams.offline.run import event_of  # noqa: E402
from streams.offline.sinks import json_line  # noqa: E402
from streams.sources.files import split_document  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
SCENARIOS = ROOT / "tests" / "scenarios"
PARTITIONS = 4
HANG_SECONDS = 20.0  # one input this slow is a hang (the slowest real one takes milliseconds)

HOSTILE_TEXT = [
    "", " ", "x\ud800y", "\udc00", "٤٤٤٤٥٥٥٥٦٦٦٦", "444455556666\n", "::ffff:45.33.32.156",
    "::ffff:3.225.16.109", "fe80::1%eth0", "AWS Internal", "ec2.amazonaws.com", "0.0.0.0",
    "255.255.255.255", "::", "not an ip", "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00", "2023-07-10T12:00:00Z", "2023-02-30T00:00:00Z", "nan",
    "Jul 10, 2023, 6:30:22 PM", "i-0123456789abcdef0", "I-0123456789ABCDEF0",
    "arn:aws:sts::111122223333:assumed-role/r/i-0123456789abcdef0",
    "arn:aws:sts::111122223333:assumed-role/", "assumed-role/x/i-", "AssumeRole",
    "AllocateAddress", "AssociateAddress", "StopInstances", "TerminateInstances",
    "CreateNatGateway", "<script>alert(1)</script>", "A" * 5000, "\x00", "\\", '"',
]
HOSTILE_VALUES: list[Any] = [None, True, False, 0, -1, 2**63, 10**30, 1.5, -1e308, 1e308, [],
                             {}, [[[]]], {"a": {"b": [None]}}, ["x"] * 50]
KEYS = ["eventTime", "eventName", "eventSource", "eventID", "sourceIPAddress", "userAgent",
        "recipientAccountId", "awsRegion", "errorCode", "vpcEndpointId", "requestParameters",
        "responseElements", "userIdentity", "@timestamp", "detail", "eventVersion"]
IDENTITY_KEYS = ["arn", "accessKeyId", "accountId", "invokedBy", "principalId", "type",
                 "sessionContext"]
NAMES = ["AssumeRole", "AllocateAddress", "AssociateAddress", "CreateNatGateway",
         "StartInstances", "StopInstances", "TerminateInstances", "GetCallerIdentity"]


def corpus() -> list[dict]:
    """Real records: the Invictus capture, Panther's test events, every scenario."""
    records: list[dict] = []
    for path in sorted((FIXTURES / "invictus" / "CloudTrail").glob("*.json")):
        records += json.loads(path.read_text())["Records"]
    for path in sorted((FIXTURES / "panther").glob("*.jsonl")):
        records += [json.loads(line).get("event") or {} for line in path.read_text().splitlines()
                    if line.strip()]
    for path in sorted(SCENARIOS.glob("*/records.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # the hostile scenarios: mutated anyway
                continue
            if isinstance(record, dict):
                records.append(record)
    return [r for r in records if isinstance(r, dict)]


def _hostile(rng: random.Random) -> Any:
    if rng.random() < 0.6:
        return rng.choice(HOSTILE_TEXT)
    return copy.deepcopy(rng.choice(HOSTILE_VALUES))  # a copy: mutated later, never shared


def _containers(value: Any, found: list) -> None:
    stack = [value]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            found.append(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def mutate(record: dict, rng: random.Random) -> dict:
    record = json.loads(json.dumps(record))  # a deep copy
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.35:
            record[rng.choice(KEYS)] = _hostile(rng)
        elif choice < 0.55:
            identity = record.setdefault("userIdentity", {})
            if isinstance(identity, dict):
                identity[rng.choice(IDENTITY_KEYS)] = _hostile(rng)
        elif choice < 0.65:
            record["eventName"] = rng.choice(NAMES)
            record["eventSource"] = rng.choice(["ec2.amazonaws.com", "sts.amazonaws.com"])
        elif choice < 0.8:
            containers: list = []
            _containers(record, containers)
            target = rng.choice(containers)
            if target and rng.random() < 0.5:
                del target[rng.choice(list(target))]
            elif target:
                target[rng.choice(list(target))] = _hostile(rng)
        elif choice < 0.9:
            record = {"detail": record, "detail-type": "AWS API Call via CloudTrail"}
        else:
            record["responseElements"] = {"credentials": {
                "accessKeyId": _hostile(rng), "expiration": _hostile(rng)}}
    return record


def encode(record: dict, rng: random.Random) -> bytes:
    raw = json.dumps(record, ensure_ascii=rng.random() < 0.8).encode("utf-8", "surrogatepass")
    choice = rng.random()
    if choice < 0.55:
        return raw
    if choice < 0.65:  # an escape where the pre-filter looks
        return raw.replace(b"assumed-role", b"assumed\\u002drole").replace(b"/i-", b"/\\u0069-")
    if choice < 0.72:  # nesting: where a walk or a decoder could recurse
        depth = rng.choice([10, 500, 900, 1000, 5000]) if rng.random() < 0.98 else 100_000
        nested = b'{"x":' * depth + b'{"publicIp": "3.5.140.2"}' + b"}" * depth
        return raw[:-1] + b', "requestParameters": ' + nested + b"}"
    if choice < 0.8:
        return raw[: rng.randrange(len(raw) + 1)]
    if choice < 0.9:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    return b"\xef\xbb\xbf" + raw


def file_of(raws: list[bytes], rng: random.Random) -> bytes:
    """Records as one file: JSON Lines, an S3 delivery file or an array, maybe gzipped."""
    choice = rng.random()
    if choice < 0.4:
        body = b"\n".join(raws)
    elif choice < 0.7:
        body = b'{"Records": [' + b", ".join(raws) + b"]}"
    elif choice < 0.85:
        body = b"[" + b",".join(raws) + b"]"
    else:
        body = rng.choice([b"", b"\n\n", b"[", b'{"Records": [', b"]]]", b'{"Records": 5}',
                           b"\xef\xbb\xbf", b"\x1f\x8b\x08\x00\xff\xff\xff\xff\xff\xff\xff\xff",
                           b"[1, \"a\", null, [], {}]"]) + b"\n".join(raws)
    if rng.random() < 0.15:
        body = gzip.compress(body, compresslevel=1, mtime=0)  # no clock in the bytes
        if rng.random() < 0.3:
            body = body[: rng.randrange(len(body) + 1)]
    return body


def inputs(seed: int) -> Iterator[tuple[bytes, list[bytes]]]:
    """(a file's bytes, the records in it) forever, the same for the same seed."""
    rng = random.Random(seed)
    records = corpus()
    while True:
        raws = []
        for _ in range(rng.randint(1, 6)):
            record = rng.choice(records)
            try:
                raws.append(encode(mutate(record, rng) if rng.random() < 0.9 else record, rng))
            except (ValueError, RecursionError):  # a mutation json cannot write: the original
                raws.append(json.dumps(record).encode())
        yield file_of(raws, rng), raws


class JsonTable(dict):
    """A dict that keeps values as a Faust table does: JSON, so what cannot be stored fails."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, json.dumps(value))

    def __getitem__(self, key: str) -> Any:
        return json.loads(super().__getitem__(key))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def values(self):  # type: ignore[override]
        return [json.loads(v) for v in super().values()]


class Harness:
    """The two record paths, each with its own detector, fed one input at a time."""

    def __init__(self) -> None:
        self.config = parse_config({"associated_accounts": ["444455556666"],
                                    "trusted_ip_cidrs": ["198.51.100.0/24"],
                                    "suppression_rules": [{"name": "lab",
                                                           "remote_cidr": "203.0.113.0/24"}]})
        self.aws = load_ip_ranges()
        self.codec = finding_codec(KafkaSettings(), writing=False)
        self.reset()

    def reset(self) -> None:
        self.offline = Detector(self.config, self.aws)
        tables: dict[str, MutableMapping] = {name: JsonTable() for name in (
            "instance_credentials", "instance_to_addresses", "address_to_account",
            "finding_aggregates", "pending_calls", "partition_clock", "offending_event_ids")}
        self.stream = Detector(self.config, self.aws, DetectorState(**tables))

    def detect(self, payload: bytes) -> None:
        """``exfilguard detect`` over one file: split, decode, judge, render, print."""
        for item in split_document(payload, "fuzz"):
            try:
                event, _ = event_of(item)
            except MalformedRecord:
                continue
            if event is not None:
                self.offline.observe(event)
        self.offline.flush()
        for finding in self.offline.findings():
            json_line(finding)

    def worker(self, raws: list[bytes]) -> None:
        """A batch message through both agents, as ``streams.app.wiring`` runs them."""
        value = b"\n".join(raws)
        for partition in range(PARTITIONS):
            for _, raw in records_of(value, BATCHED):
                try:
                    parsed, record = decode_record(raw)
                except MalformedRecord:
                    continue
                if parsed is None:
                    continue
                route = route_of_event(parsed, record)
                partitions_of(route, PARTITIONS)
                copies = copies_on(route, partition, PARTITIONS)
                if isinstance(parsed, Issuance):
                    self.stream.track_issuance(parsed)
                for key, network_only in copies:
                    self.second_agent(raw, key, network_only)

    def second_agent(self, raw: bytes, key: bytes | None, network_only: bool) -> None:
        parsed = decode(raw)
        if isinstance(parsed, ApiCall) and parsed.network is not None and network_only:
            parsed = parsed.network
        if parsed is None:
            return
        scope = key.decode() if isinstance(key, bytes) else None
        for finding_id in self.stream.observe(parsed, scope_instance=scope):
            self.codec.encode(self.stream.render(finding_id))
        self.stream.retired.clear()  # as the worker does once it has published them


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


def run(count: int, seed: int, out: Path | None = None, report_every: int = 0,
        hang_seconds: float | None = HANG_SECONDS) -> dict[str, int]:
    """Feed ``count`` inputs; returns {inputs, crashes, hangs}; bad inputs are written to out.
    ``hang_seconds`` None: no clock (the unit test); a hang then shows as a test that never ends."""
    harness = Harness()
    totals = {"inputs": 0, "crashes": 0, "hangs": 0}
    first_crashes: list[str] = []
    if hang_seconds:
        signal.signal(signal.SIGALRM, _alarm)
    started = time.monotonic()
    for n, (payload, raws) in enumerate(inputs(seed)):
        if n >= count:
            break
        if n % 500 == 0:
            harness.reset()  # state grows with every finding: keep a run's memory flat
        totals["inputs"] += 1
        if hang_seconds:
            signal.setitimer(signal.ITIMER_REAL, hang_seconds)
        try:
            harness.detect(payload)
            harness.worker(raws)
        except Hang:
            totals["hangs"] += 1
            _keep(out, "hang", n, payload, "")
            harness.reset()
        except Exception:
            totals["crashes"] += 1
            trace = traceback.format_exc()
            if len(first_crashes) < 3:
                first_crashes.append(trace)
            _keep(out, "crash", n, payload, trace)
            harness.reset()
        finally:
            if hang_seconds:
                signal.setitimer(signal.ITIMER_REAL, 0)
        if report_every and totals["inputs"] % report_every == 0:
            rate = totals["inputs"] / (time.monotonic() - started)
            print(f"  {totals['inputs']} inputs, {totals['crashes']} crashes, "
                  f"{totals['hangs']} hangs ({rate:.0f}/s)", file=sys.stderr, flush=True)
    totals["first_crashes"] = first_crashes  # type: ignore[assignment]
    return totals


def _keep(out: Path | None, kind: str, n: int, payload: bytes, trace: str) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{kind}-{n}.bin").write_bytes(payload)
    if trace:
        (out / f"{kind}-{n}.txt").write_text(trace)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / ".cache" / "fuzz"),
                        help="where crashing and hanging inputs are written")
    args = parser.parse_args()
    totals = run(args.inputs, args.seed, Path(args.out), report_every=max(args.inputs // 20, 1))
    for trace in totals.pop("first_crashes"):  # type: ignore[union-attr]
        print(trace, file=sys.stderr)
    print(f"inputs tried {totals['inputs']} / crashes {totals['crashes']} / "
          f"hangs {totals['hangs']}")
    return 0 if totals["crashes"] == totals["hangs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
