"""Table key_lineage forgets a minted key's entry by event time, a day past the key's expiry,
never before; the stream's upkeep (streams.app.lineage) run over plain dicts."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from cloudtrail_builders import (  # noqa: E402
    assume_role,
    assumed_role_identity,
    at,
)

from streams.app.lineage import (  # noqa: E402
    EXPIRY_CHUNK,
    MINTED_KEY_MAX_MS,
    expire,
    minting_times,
    remember,
)
from streams.core.detector import OFFENDING_ID_KEPT_MS  # noqa: E402
from streams.core.times import parse_expiration, parse_time  # noqa: E402

HOUR = 3600 * 1000


def minted(table: dict, key: str, until: int) -> None:
    table[key] = {"instance": "i-0123456789abcdef0", "until": until}
    remember(table, key, until)


def keys(table: dict) -> set[str]:
    return {key for key in table if not key.startswith("~")}


def test_an_entry_goes_a_day_past_its_keys_expiry():
    record = assume_role(event_id="e-1", time=at(0), identity=assumed_role_identity(
        account="111122223333", role="web-role", session="i-0123456789abcdef0",
        access_key="ASIAPARENT0000000000", created=at(-1)), source_ip="3.225.16.109",
        child_key="ASIACHILD00000000000", role_arn="arn:aws:iam::111122223333:role/next",
        session="next")
    minted_at, until = minting_times(record)
    assert minted_at == parse_time(at(0))
    expiry = record["responseElements"]["credentials"]["expiration"]
    assert until == parse_expiration(expiry) + OFFENDING_ID_KEPT_MS
    assert until == minted_at + HOUR + OFFENDING_ID_KEPT_MS  # a one-hour session
    del record["responseElements"]["credentials"]["expiration"]
    assert minting_times(record)[1] == minted_at + MINTED_KEY_MAX_MS + OFFENDING_ID_KEPT_MS


def test_nothing_goes_before_its_time_and_everything_after():
    table: dict = {}
    minted(table, "ASIAA", 10 * HOUR)
    minted(table, "ASIAB", 30 * HOUR)
    assert expire(table, 9 * HOUR) is not None
    assert keys(table) == {"ASIAA", "ASIAB"}
    # One chunk goes when all of it is due: the earlier entry waits for the later one.
    assert expire(table, 20 * HOUR) == 30 * HOUR
    assert keys(table) == {"ASIAA", "ASIAB"}
    assert expire(table, 30 * HOUR + 1) is None
    assert table == {"~expiry_span": [1, 1, 30 * HOUR]}


def test_an_entry_written_again_with_a_later_time_stays():
    table: dict = {}
    minted(table, "ASIAA", 10 * HOUR)
    minted(table, "ASIAA", 40 * HOUR)  # its lineage resolved again later (a redelivery)
    expire(table, 11 * HOUR)
    assert "ASIAA" in table  # its first log line is due, but the entry says 40 hours
    expire(table, 41 * HOUR)
    assert "ASIAA" not in table


def test_parked_records_go_with_their_key():
    table: dict = {}
    parked = {"ASIAA": [["cmVjb3Jk", None]], "ASIAOTHER": [["cmVjb3Jk", None]]}
    minted(table, "ASIAA", 10 * HOUR)
    expire(table, 11 * HOUR, also=(parked,))
    assert parked == {"ASIAOTHER": [["cmVjb3Jk", None]]}


def test_the_table_stays_bounded_by_the_keys_still_in_use():
    table: dict = {}
    minutes = 3000  # a key minted every minute for 50 hours, each forgotten 25 hours later
    for n in range(minutes):
        minted(table, f"ASIA{n:016d}", n * 60_000 + 25 * HOUR)
        expire(table, n * 60_000)
    now = (minutes - 1) * 60_000
    live = {key for key in keys(table) if table[key]["until"] >= now}
    assert len(live) == 25 * 60 + 1
    # Held beyond them: at most the due part of the oldest chunk.
    assert len(keys(table) - live) < EXPIRY_CHUNK
    assert sum(1 for key in table if key.startswith("~expiry/")) <= len(live) // EXPIRY_CHUNK + 2
