"""Every labelled scenario with the default config as one stream (the scenario stream test, the
chaos trials, the kill model over all of them): each folder gets its own account and instance
id, and the addresses two folders share as different holders' get one each. Allocation ids stay
shared, as they are: they are their account's."""

from __future__ import annotations

from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
ACCOUNT = b"111122223333"
INSTANCE = b"0123456789abcdef0"


def merged_lines() -> list[bytes]:
    lines = []
    folders = sorted(p for p in SCENARIOS.iterdir()
                     if (p / "records.jsonl").exists() and not (p / "config.yaml").exists())
    assert len(folders) >= 15
    for number, folder in enumerate(folders):
        data = (folder / "records.jsonl").read_bytes()
        data = data.replace(ACCOUNT, f"{900000000000 + number:012d}".encode())
        data = data.replace(INSTANCE, f"{number:017x}".encode())
        data = data.replace(INSTANCE.upper(), f"{number:017X}".encode())
        # Two folders allocate the same elastic IP; in one stream it must be one account's.
        data = data.replace(b"18.204.10.20", f"18.204.10.{100 + number}".encode())
        # So does a NAT gateway's address (nat-gateway-egress) that other folders' instances use
        # as their own: in one stream it would be that account's NAT, and calls from it theft.
        data = data.replace(b"54.152.0.10", f"54.152.{number}.10".encode())
        lines += [line for line in data.splitlines() if line.strip()]
    return lines
