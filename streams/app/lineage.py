"""Table ``key_lineage``'s upkeep: each entry (minted key → its instance, pending or untracked)
expires by event time, a day past the minted key's expiry (the redelivery margin the core keeps
offending ids for), so the table holds the keys still in use, not every key ever minted."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from streams.core.detector import OFFENDING_ID_KEPT_MS
from streams.core.records import event_time_of
from streams.core.times import BadTime, parse_expiration

# A minted key whose AssumeRole gives no expiration lives at most this long (AssumeRole's
# 12-hour ceiling for a role's sessions).
MINTED_KEY_MAX_MS = 12 * 3600 * 1000
# When each entry may go, in the order written, in chunks: keys EXPIRY_LOG + n hold
# [[key, until], ...]; EXPIRY_SPAN holds [oldest chunk, newest chunk, oldest's due lower bound].
# Reserved keys: no access key starts with "~".
EXPIRY_LOG = "~expiry/"
EXPIRY_SPAN = "~expiry_span"
EXPIRY_CHUNK = 64


def minting_times(record: dict) -> tuple[int, int]:
    """(when an AssumeRole minted its key, when that key's lineage may be forgotten)."""
    at = event_time_of(record)
    response = record.get("responseElements")
    credentials = response.get("credentials") if isinstance(response, dict) else None
    try:
        expiry = parse_expiration(credentials.get("expiration")
                                  if isinstance(credentials, dict) else None)
    except BadTime:
        expiry = None
    if expiry is None:
        expiry = at + MINTED_KEY_MAX_MS
    return at, max(expiry, at) + OFFENDING_ID_KEPT_MS


def remember(table: MutableMapping[str, Any], key: str, until: int) -> None:
    """Log that ``key``'s entry may go after ``until`` (event ms)."""
    span = table.get(EXPIRY_SPAN) or [0, 0, 0]
    chunk_key = f"{EXPIRY_LOG}{span[1]}"
    chunk = table.get(chunk_key) or []
    chunk.append([key, until])
    table[chunk_key] = chunk
    if len(chunk) >= EXPIRY_CHUNK:  # full: the next key starts a new chunk
        table[EXPIRY_SPAN] = [span[0], span[1] + 1, span[2]]
    elif EXPIRY_SPAN not in table:
        table[EXPIRY_SPAN] = span


def expire(table: MutableMapping[str, Any], now: int,
           also: tuple[MutableMapping[str, Any], ...] = ()) -> int | None:
    """Forget the entries due before ``now``, a chunk at a time from the oldest; a chunk goes
    when all its entries are due, so none goes early, and an entry written again since (a later
    ``until``) stays. ``also``: tables keyed alike whose entries go with them. Returns when
    to look again at the earliest (None: nothing is logged; look again after ``remember``)."""
    span = table.get(EXPIRY_SPAN)
    if span is None:
        return None
    oldest, newest, not_before = span
    if now <= not_before:
        return not_before
    waiting = False
    while oldest <= newest:
        chunk_key = f"{EXPIRY_LOG}{oldest}"
        chunk = table.get(chunk_key)
        if not chunk:
            break
        waiting = True
        due = max(until for _, until in chunk)
        if due >= now:
            not_before = due
            break
        waiting = False
        for key, _ in chunk:
            entry = table.get(key)
            if isinstance(entry, dict) and entry.get("until", 0) < now:
                del table[key]
                for other in also:
                    if key in other:
                        del other[key]
        del table[chunk_key]
        oldest += 1
        newest = max(newest, oldest)
    if [oldest, newest, not_before] != span:
        table[EXPIRY_SPAN] = [oldest, newest, not_before]
    return not_before if waiting else None
