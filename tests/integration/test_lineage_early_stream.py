"""Key lineage in the stream when a derived key's records are read before any copy of the
AssumeRole that minted it (another region's file forwarded earlier): once the AssumeRole arrives
and binds the key to the instance, the worker reads those records again and the stream gives
`detect`'s findings byte for byte, for one hop and for two (the middle key's own AssumeRole
read early too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import as_detect_gives, read_findings

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
INSTANCE = "0123456789abcdef0"


def derived_first(tmp_path: Path) -> list[Path]:
    """Two files: every record signed with a derived key (no instance session, no issuance),
    then the rest, of lineage-one-hop and lineage-two-hops (each its own instance)."""
    derived, rest = [], []
    for number, name in enumerate(("lineage-one-hop", "lineage-two-hops")):
        text = (SCENARIOS / name / "records.jsonl").read_text()
        text = text.replace(INSTANCE, f"{number + 1:017x}")
        for line in text.splitlines():
            if not line.strip():
                continue
            identity = json.loads(line)["userIdentity"]
            by_instance = identity.get("arn", "").rsplit("/", 1)[-1].startswith("i-")
            (rest if by_instance or identity.get("invokedBy") else derived).append(line)
    assert len(derived) == 6  # one hop: the child's 3 calls; two hops: an AssumeRole, 2 calls
    paths = [tmp_path / "derived.jsonl", tmp_path / "rest.jsonl"]
    for path, part in zip(paths, (derived, rest), strict=True):
        path.write_text("\n".join(part) + "\n")
    return paths


@pytest.mark.parametrize("batch_records", ["500", "1"], ids=["batched", "one-per-message"])
def test_derived_keys_calls_read_before_their_assumerole_give_what_detect_gives(
        deployment, tmp_path, batch_records):
    files = derived_first(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 0\n")
    d = deployment(partitions=3)
    worker = d.start_worker(config=str(config))
    for path in files:
        forwarded = d.exfilguard("forward", "--config", str(config), "--batch-records",
                                 batch_records, str(path))
        assert forwarded.returncode == 0, forwarded.stderr.decode()
    offline = d.exfilguard("detect", "--config", str(config), *map(str, files))
    assert offline.returncode == 0, offline.stderr.decode()
    expected = sorted(offline.stdout.splitlines())
    # Each key's finding: one hop's child and instance key, two hops' three keys.
    assert len(expected) == 5
    streamed = sorted(as_detect_gives(f) for f in read_findings(d, len(expected)))
    tries = 10
    while streamed != expected and tries:
        tries -= 1
        streamed = sorted(as_detect_gives(f) for f in read_findings(d, len(expected), timeout=10))
    assert streamed == expected, f"worker log:\n{worker.log_path.read_text()[-4000:]}"
