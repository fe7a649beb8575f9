"""Key lineage in the stream, with two accounts' trails interleaved as they are delivered: the
role account's trail (its copy of the AssumeRole, then the child key's calls) arrives before the
instance account's copy of that AssumeRole, and the stream still gives `detect`'s findings byte
for byte (the instance's own earlier records came first, as one trail delivers them in order)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import as_detect_gives, read_findings

SCENARIO = (Path(__file__).resolve().parents[1] / "scenarios" / "lineage-cross-account-duplicate"
            / "records.jsonl")
ROLE_ACCOUNT = "999988887777"


def split_trails(tmp_path: Path) -> list[Path]:
    """The instance account's records before the AssumeRole, the role account's trail, then the
    instance account's copy of the AssumeRole."""
    lines = [line for line in SCENARIO.read_text().splitlines() if line.strip()]
    role = [line for line in lines if json.loads(line)["recipientAccountId"] == ROLE_ACCOUNT]
    owner = [line for line in lines if line not in role]
    before = [line for line in owner if json.loads(line)["eventName"] != "AssumeRole"
              or json.loads(line)["userIdentity"].get("invokedBy")]
    after = [line for line in owner if line not in before]
    assert len(role) == 3 and len(after) == 1  # the AssumeRole's copies and the child's calls
    paths = [tmp_path / name for name in ("owner-before.jsonl", "role.jsonl", "owner-after.jsonl")]
    for path, part in zip(paths, (before, role, after), strict=True):
        path.write_text("\n".join(part) + "\n")
    return paths


@pytest.mark.parametrize("batch_records", ["500", "1"], ids=["batched", "one-per-message"])
def test_the_role_trail_before_the_owners_copy_gives_what_detect_gives(deployment, tmp_path,
                                                               batch_records):
    trails = split_trails(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("finding_update_interval_seconds: 0\n")
    d = deployment(partitions=3)
    d.start_worker(config=str(config))
    for trail in trails:
        forwarded = d.exfilguard("forward", "--config", str(config), "--batch-records",
                                 batch_records, str(trail))
        assert forwarded.returncode == 0, forwarded.stderr.decode()
    offline = d.exfilguard("detect", "--config", str(config), *map(str, trails))
    assert offline.returncode == 0, offline.stderr.decode()
    expected = sorted(offline.stdout.splitlines())
    assert len(expected) == 2  # the instance key's (its AssumeRole counted once) and the child's
    streamed = sorted(as_detect_gives(f) for f in read_findings(d, len(expected)))
    tries = 10
    while streamed != expected and tries:
        tries -= 1
        streamed = sorted(as_detect_gives(f) for f in read_findings(d, len(expected), timeout=10))
    assert streamed == expected
