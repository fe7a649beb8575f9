"""Table recovery in bulk: changelog partitions behind their end are read straight into RocksDB
by one confluent-kafka consumer before Faust's own recovery (~100 µs a message in Python), which
then has little or nothing left; same keys and values, same order."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from rocksdict import WriteBatch

log = logging.getLogger("exfilguard.worker")
# librdkafka logs every refused connection; the one line on giving up says it instead.
_QUIET = logging.getLogger("exfilguard.restore.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

BATCH = 10_000  # messages per consume() and per RocksDB write batch
# A restore reads inside the rebalance callback, where Faust reads the persisted offsets, for
# this long at most, then goes on after it: aiokafka sends no heartbeat until the callback
# returns, and the worker's session timeout is 30 s.
INLINE_SECONDS = 5.0
STALL_SECONDS = 30.0  # no message for this long: give up, Faust's recovery carries on
WATERMARK_TIMEOUT = 10.0  # seconds to learn where a changelog partition ends


class RestoreStalled(Exception):
    """The changelog stopped arriving before its end."""


@dataclass
class ChangelogPartition:
    """One active changelog partition and the RocksDB it restores into."""

    tp: TP
    db: Any  # the store's rocksdict.Rdict for this partition
    offset_key: bytes
    persisted: int  # last offset in RocksDB, as Faust keeps it (-1: none)
    end: int = 0  # high watermark when the restore began


def restore_partitions(consumer_config: dict[str, Any], partitions: list[ChangelogPartition],
                       min_messages: int, stop: threading.Event, deadline: float | None = None,
                       ) -> tuple[int, int, bool]:
    """If any partition is at least ``min_messages`` behind, read every partition behind up to
    its high watermark into its RocksDB as Faust's ``apply_changelog_batch`` would: the
    message's key and value bytes, a tombstone deletes, and the last offset written goes in the
    same write batch. Runs in a thread; returns early once ``stop`` is set or ``deadline``
    (monotonic) has passed, each RocksDB consistent up to its persisted offset, and a call
    again reads on from there. Returns the partitions restored, the messages read, and whether
    every partition got to its end."""
    consumer = Consumer({
        **consumer_config,
        # assign() only: no group is joined and no offset committed; librdkafka wants an id.
        "group.id": f"exfilguard-restore-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",  # compacted or deleted below the persisted offset
        "isolation.level": "read_uncommitted",  # as Faust reads them (no transactions)
        # librdkafka pauses fetching for a second once 100,000 messages wait in its queue: this
        # loop empties it faster than that (5× faster on a local broker with these). Its
        # queue is bounded by bytes instead: bigger fetches were no faster, only bigger.
        "queued.min.messages": 1_000_000,
        "fetch.queue.backoff.ms": 10,
        "queued.max.messages.kbytes": 16 * 1024,
        "fetch.max.bytes": 8 * 1024 * 1024,
        "max.partition.fetch.bytes": 2 * 1024 * 1024,
        "logger": _QUIET,
    })
    try:
        for part in partitions:
            _, part.end = consumer.get_watermark_offsets(
                TopicPartition(part.tp.topic, part.tp.partition), timeout=WATERMARK_TIMEOUT)
        if not any(part.end - 1 - part.persisted >= min_messages for part in partitions):
            return 0, 0, True
        # Once a consumer reads in bulk, the shorter changelogs cost it next to nothing, and
        # Faust then has none left to read.
        behind = {(part.tp.topic, part.tp.partition): part for part in partitions
                  if part.end - 1 > part.persisted}
        consumer.assign([TopicPartition(topic, partition, part.persisted + 1)
                         for (topic, partition), part in behind.items()])
        restored, read = len(behind), 0
        heard_at = time.monotonic()
        while behind and not stop.is_set():
            if deadline is not None and time.monotonic() > deadline:
                break
            messages = consumer.consume(BATCH, timeout=0.1)
            if not messages:
                if time.monotonic() - heard_at > STALL_SECONDS:
                    raise RestoreStalled(f"no changelog message for {STALL_SECONDS:.0f} s")
                continue
            heard_at = time.monotonic()
            batches: dict[tuple[str, int], WriteBatch] = {}
            done: set[tuple[str, int]] = set()
            for message in messages:
                where = (message.topic(), message.partition())
                part = behind.get(where)
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    if part is not None and message.offset() >= part.end:
                        # The end: the last offsets may be gone (compacted tombstones).
                        part.persisted = part.end - 1
                        batches.setdefault(where, WriteBatch(raw_mode=True))
                        done.add(where)
                    continue
                offset = message.offset()
                if part is None or offset >= part.end:
                    continue
                batch = batches.get(where)
                if batch is None:
                    batch = batches[where] = WriteBatch(raw_mode=True)
                value = message.value()
                if value is None:
                    batch.delete(message.key())
                else:
                    batch.put(message.key(), value)
                part.persisted = offset
                read += 1
                if offset == part.end - 1:
                    done.add(where)
            for where, batch in batches.items():
                part = behind[where]
                batch.put(part.offset_key, str(part.persisted).encode())
                part.db.write(batch)
            if done:
                consumer.incremental_unassign([TopicPartition(*where) for where in done])
                for where in done:
                    del behind[where]
        return restored, read, not behind
    finally:
        consumer.close()


class BulkRecovery(Recovery):
    """Faust's recovery, preceded by a bulk restore of the active changelog partitions behind.

    Faust reads each partition's persisted offset when a rebalance assigns it (``on_rebalance``,
    inside the rebalance callback): the restore runs first, in a thread. One that takes longer
    than ``INLINE_SECONDS`` goes on after the callback, so the consumer heartbeats, and Faust's
    recovery waits for it; Faust then starts from the offsets the restore persisted.
    """

    def __init__(self, app: Any, tables: Any, *, consumer_config: dict[str, Any],
                 min_messages: int, **kwargs: Any) -> None:
        self.consumer_config = consumer_config
        self.min_messages = min_messages
        self._restore_stop = threading.Event()
        self._restoring: asyncio.Future | None = None
        super().__init__(app, tables, **kwargs)

    def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self._restore_stop.set()  # the thread lets go of the revoked RocksDBs after one batch
        super().on_partitions_revoked(revoked)

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
                           generation_id: int = 0) -> None:
        await self._stop_restoring()
        partitions = self._active_partitions()
        # Exactly-once persists offsets on commit only: left to Faust.
        if partitions and self.min_messages > 0 and not self.app.in_transaction:
            self._restore_stop = stop = threading.Event()
            if not await self._restore(partitions, stop, time.monotonic() + INLINE_SECONDS):
                self._restoring = asyncio.ensure_future(self._restore_then_recover(
                    partitions, stop, assigned, revoked, newly_assigned, generation_id))
                return
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_stop(self) -> None:
        self._restore_stop.set()
        await super().on_stop()

    async def _stop_restoring(self) -> None:
        self._restore_stop.set()
        if self._restoring is not None:
            await self._restoring
            self._restoring = None

    def _active_partitions(self) -> list[ChangelogPartition]:
        standbys = self.app.assignor.assigned_standbys()
        partitions = []
        for tp in self.app.assignor.assigned_actives():
            table = self.tables._changelogs.get(tp.topic)
            store = table.data if table is not None else None
            if tp in standbys or not isinstance(store, RocksDBStore) or not store.use_rocksdict:
                continue
            db = store._dbs.get(tp.partition)  # opened by the store's own on_rebalance
            if db is None:
                continue
            persisted = store.persisted_offset(tp)
            partitions.append(ChangelogPartition(
                tp, db, store.offset_key, -1 if persisted is None else persisted))
        return partitions

    async def _restore(self, partitions: list[ChangelogPartition], stop: threading.Event,
                       deadline: float | None = None) -> bool:
        """Restore in a thread; False when the deadline came first and there is more."""
        started = time.monotonic()
        try:
            restored, read, finished = await asyncio.get_running_loop().run_in_executor(
                None, restore_partitions, self.consumer_config, partitions, self.min_messages,
                stop, deadline)
        except Exception as exc:  # the broker, or RocksDB: Faust reads the rest itself
            log.warning("tables: bulk restore stopped (%s: %s); Faust's recovery reads the "
                        "changelogs from where it stopped", type(exc).__name__, exc)
            return True
        if restored and not stop.is_set():
            log.info("tables: read %s changelog messages in bulk in %.1f s (changelog "
                     "partitions: %s)%s", f"{read:,}", time.monotonic() - started, restored,
                     "" if finished else "; reading on after the rebalance")
        return finished or stop.is_set()

    async def _restore_then_recover(self, partitions: list[ChangelogPartition],
                                    stop: threading.Event, *rebalance: Any) -> None:
        try:
            await self._restore(partitions, stop)
        finally:
            partitions.clear()  # no RocksDB handle outlives the restore
        if stop.is_set():
            return  # a rebalance or shutdown came first; it recovers on its own
        try:
            await super().on_rebalance(*rebalance)
        except Exception as exc:
            await self.app.crash(exc)


def bulk_restoring_tables(consumer_config: dict[str, Any], min_messages: int) -> type:
    """A Faust ``TableManager`` class (the app's ``TableManager`` setting) whose recovery
    restores far-behind changelog partitions in bulk with these confluent-kafka settings."""

    class BulkRestoringTableManager(TableManager):
        @property
        def recovery(self) -> Recovery:
            if self._recovery is None:
                self._recovery = BulkRecovery(
                    self.app, self, consumer_config=consumer_config, min_messages=min_messages,
                    beacon=self.beacon, loop=self.loop)
            return self._recovery

    return BulkRestoringTableManager
