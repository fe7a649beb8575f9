"""The core's tables as sections of one Faust table, so every write a record makes goes to one
changelog partition, in order: a worker killed -9 leaves a prefix of all of them. Tables on
changelogs of their own each keep their own prefix, and no order of writes makes those agree
(a drained queue kept while the finding it made was lost). No Faust import: any mapping works."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, MutableMapping
from typing import Any

log = logging.getLogger("exfilguard.worker")

# The value that shadows a key of a legacy table deleted since (legacy tables are only read).
DELETED = {"exfilguard": "deleted"}
RUNNING_MARKER = "exfilguard-running"
STATE_TABLE = "detector_state"  # its changelog: <app id>-detector_state-changelog


class Section(MutableMapping):
    """One core table: the keys of ``table`` under ``<name>/``. With ``legacy``, the table this
    one had to itself before (read, never written): a key missing here is looked up there, and
    a key deleted that it holds is shadowed, so state written by a release before this one goes
    on being read."""

    def __init__(self, table: MutableMapping[str, Any], name: str,
                 legacy: MutableMapping[str, Any] | None = None) -> None:
        self.table = table
        self.prefix = f"{name}/"
        self.legacy = legacy

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.get(self.prefix + key)
        if value is None:
            if self.legacy is None:
                return default
            value = self.legacy.get(key)
            return default if value is None else value
        return default if value == DELETED else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[self.prefix + key] = value

    def __delitem__(self, key: str) -> None:
        if self.legacy is not None and self.legacy.get(key) is not None:
            if self.table.get(self.prefix + key) == DELETED:
                raise KeyError(key)
            self.table[self.prefix + key] = DELETED
        else:
            # Read first: Faust deletes a key from the partition it last read or wrote it on,
            # or from every partition it has never seen it on, and the keys of several
            # sections (the clock's, the broadcast addresses') are on every partition.
            if self.table.get(self.prefix + key) is None:
                raise KeyError(key)
            del self.table[self.prefix + key]

    def __iter__(self) -> Iterator[str]:
        here = set()
        for full, value in list(self.table.items()):
            if isinstance(full, str) and full.startswith(self.prefix):
                key = full[len(self.prefix):]
                here.add(key)
                if value != DELETED:
                    yield key
        if self.legacy is not None:
            for key in list(self.legacy.keys()):
                if key not in here:
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


def wipe_if_unclean(datadir: str, tabledir: str) -> bool:
    """Remove the local tables if the last worker on ``datadir`` did not stop cleanly, and mark
    this one running. A worker killed -9 leaves RocksDB holding writes its changelog never got
    (they are written locally at once, sent to Kafka after), so restoring over them mixes two
    points in time key by key; restored from the changelog alone they are a prefix of it, which
    the detector takes as a redelivery. True when tables were removed."""
    os.makedirs(datadir, exist_ok=True)
    marker = os.path.join(datadir, RUNNING_MARKER)
    wiped = False
    if os.path.exists(marker) and os.path.isdir(tabledir):
        log.warning("the last worker on %s did not stop cleanly: its local tables are removed "
                    "and restored from their changelogs", datadir)
        shutil.rmtree(tabledir)
        wiped = True
    with open(marker, "w") as out:
        out.write(f"{os.getpid()}\n")
    return wiped


def mark_stopped(datadir: str) -> None:
    """The worker stopped cleanly (its writes and offsets committed): its tables are kept."""
    try:
        os.remove(os.path.join(datadir, RUNNING_MARKER))
    except FileNotFoundError:
        pass
