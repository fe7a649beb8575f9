"""A worker restarted on an empty disk gets its tables back from the changelogs in bulk: the same
RocksDB contents the first worker built, deleted keys deleted, and it still detects."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from test_pipeline import read_findings, write_config, write_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cloudtrail_builders import at, call, issuance  # noqa: E402

INSTANCES = 120
REISSUED = range(0, INSTANCES, 10)  # these get a second key once the first has expired
THIEF = "45.33.32.156"


def instance(n: int) -> str:
    return f"i-{n:017x}"


def key(n: int, generation: int = 0) -> str:
    return f"ASIARESTORE{generation}{n:08d}"


def tables(data_dir: Path) -> dict[str, dict[bytes, bytes]]:
    """Every table partition's RocksDB, read-only: name → key → value (Faust's offset aside)."""
    from rocksdict import AccessType, Options, Rdict

    contents = {}
    for path in sorted(data_dir.rglob("*.db")):
        db = Rdict(str(path), options=Options(raw_mode=True),
                   access_type=AccessType.read_only())
        try:
            contents[path.name] = {k: v for k, v in db.items() if k != b"__faust\0offset__"}
        finally:
            db.close()
    return contents


def credentials(contents: dict[str, dict[bytes, bytes]]) -> dict[str, dict[str, bytes]]:
    """The instance_credentials section of the core's table, per partition: key → value."""
    prefix = "instance_credentials/"
    return {name: {json.loads(k)[len(prefix):]: v for k, v in keys.items()
                   if json.loads(k).startswith(prefix)}
            for name, keys in contents.items() if name.startswith("detector_state")}


def test_a_worker_on_an_empty_disk_restores_its_tables_in_bulk(deployment, tmp_path):
    # Pinned below these short changelogs' length, whatever the default.
    d = deployment(partitions=2, EXFILGUARD_BULK_RESTORE_MIN_MESSAGES="50")
    config = str(write_config(tmp_path))
    first = d.start_worker("w0", config=config)
    # The instances not reissued get their key three hours later, so it is still valid when the
    # thefts come (an instance whose keys have all expired past the grace, with nothing since,
    # is forgotten: its expired keys cannot be used).
    records = [issuance(event_id=f"issue-{n}",
                        time=at(seconds=n) if n in REISSUED else at(minutes=180, seconds=n),
                        instance_id=instance(n), access_key=key(n)) for n in range(INSTANCES)]
    # Seven hours on, past the first keys' expiry and grace: the second issuance deletes the
    # first key from instance_credentials (a tombstone on its changelog).
    records += [issuance(event_id=f"reissue-{n}", time=at(minutes=7 * 60 + 1, seconds=n),
                         instance_id=instance(n), access_key=key(n, 1)) for n in REISSUED]
    forwarded = d.exfilguard("forward", str(write_jsonl(tmp_path / "issuances.jsonl", records)))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    deadline = time.monotonic() + 60
    while d.metrics(first).get("exfilguard_issuances_total", 0) < len(records):
        assert time.monotonic() < deadline, "the first worker did not track every issuance"
        time.sleep(0.5)
    time.sleep(2)  # the last changelog messages are sent
    assert d.stop_worker(first) == 0

    second = d.start_worker("w1", config=config)
    assert "messages in bulk" in second.log_path.read_text()
    # Calls from outside AWS without the delivery marker: only a key the tables hold makes
    # them instance credentials. Each reissued instance's old key comes first on its partition.
    thefts = []
    for n in REISSUED:
        thefts.append(call(event_id=f"old-{n}", time=at(minutes=7 * 60 + 5), access_key=key(n),
                           instance_id=instance(n), source_ip=THIEF, delivery=None))
        thefts.append(call(event_id=f"new-{n}", time=at(minutes=7 * 60 + 5),
                           access_key=key(n, 1), instance_id=instance(n), source_ip=THIEF,
                           delivery=None))
    kept = [n for n in range(INSTANCES) if n not in REISSUED][::7]
    thefts += [call(event_id=f"kept-{n}", time=at(minutes=7 * 60 + 5), access_key=key(n),
                    instance_id=instance(n), source_ip=THIEF, delivery=None) for n in kept]
    forwarded = d.exfilguard("forward", str(write_jsonl(tmp_path / "thefts.jsonl", thefts)))
    assert forwarded.returncode == 0, forwarded.stderr.decode()
    expected = {key(n, 1) for n in REISSUED} | {key(n) for n in kept}
    findings = read_findings(d, len(expected))
    assert {f["resource"]["accessKeyDetails"]["accessKeyId"] for f in findings} == expected
    assert d.stop_worker(second) == 0

    # The restored credentials are the first worker's, byte for byte (the thefts changed
    # other tables only): every live key, no expired one.
    restored = credentials(tables(tmp_path / "w1"))
    built = credentials(tables(tmp_path / "w0"))
    assert len(built) == 2 and restored == built
    live = {key(n, 1 if n in REISSUED else 0) for n in range(INSTANCES)}
    assert {k for keys in restored.values() for k in keys} == live
