"""Findings for the downstream tests, from the golden detect outputs (real findings, not mocks):
the public capture's IPv4 finding, the IPv6 scenario's, an InsideAWS one, and many copies."""

from __future__ import annotations

import copy
import json
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.jsonl").read_text().splitlines()[0])


def ipv4() -> dict:
    return golden("invictus-detect")


def ipv6() -> dict:
    return golden("scenario-ipv6-outside")


def inside_aws() -> dict:
    return golden("scenario-declared-network-associated")


def copies(finding: dict, n: int) -> list[dict]:
    """``n`` distinct findings (ids of their own) like ``finding``."""
    made = []
    for i in range(n):
        one = copy.deepcopy(finding)
        one["id"] = f"{i:04d}" + finding["id"][4:]
        made.append(one)
    return made


def write_jsonl(path: Path, findings: list[dict]) -> Path:
    path.write_text("".join(json.dumps(f) + "\n" for f in findings))
    return path
