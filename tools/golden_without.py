"""Checks that regenerated golden outputs differ from the committed ones only by given fields:
``python tools/golden_without.py REV service.additionalInfo.apiCalls`` strips each dotted
field from both sides of every tests/golden file and compares the rest, line by line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stripped(text: str, fields: list[str]) -> list[dict]:
    findings = [json.loads(line) for line in text.splitlines() if line.strip()]
    for finding in findings:
        for field in fields:
            *path, last = field.split(".")
            holder = finding
            for part in path:
                holder = holder.get(part) or {}
            holder.pop(last, None)
    return findings


def main(revision: str, fields: list[str]) -> int:
    differ = []
    for golden in sorted((ROOT / "tests" / "golden").glob("*.jsonl")):
        relative = golden.relative_to(ROOT).as_posix()
        before = subprocess.run(["git", "show", f"{revision}:{relative}"], cwd=ROOT,
                                capture_output=True, text=True, check=False)
        if before.returncode != 0:
            continue  # new in this change: nothing to compare with
        if stripped(before.stdout, fields) != stripped(golden.read_text(), fields):
            differ.append(relative)
    for relative in differ:
        print(f"{relative}: differs beyond {', '.join(fields)}")
    print(f"{len(differ)} golden file(s) differ beyond the given fields")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
