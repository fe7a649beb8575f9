"""Faust's Kafka transport with two mends (Faust 0.15.3 with aiokafka 0.14):

- records fetched for a partition Faust is not reading are sought back, never handed over and
  dropped (the empty-disk stall; see ``_ConsumerThread``);
- the producer's flush before an offset commit waits for every table write still queued in
  Faust's buffer (see ``_DrainingBuffer``): otherwise a worker killed after the commit loses
  table writes of records it will not read again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer

log = logging.getLogger("exfilguard.worker")


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """When Faust's own recovery ends it pauses the changelogs before it resumes the input, so
    its set of active partitions is briefly empty; aiokafka's ``fetched_records`` reads an empty
    set as "every partition", drains the input records fetched during recovery, and Faust drops
    them as not active. aiokafka's position is then past them, and a partition with no committed
    offset is never sought back: the worker reports ready and consumes nothing."""

    async def _fetch_records(self, consumer: Any, active_partitions: Any,
                             timeout: float | None = None,
                             max_records: int | None = None) -> Any:
        # Faust passes its live set, which another thread empties and refills while aiokafka
        # waits on it: a copy taken now, and nothing fetched for nobody.
        wanted = frozenset(active_partitions)
        if not wanted:
            return {}
        records = await super()._fetch_records(consumer, wanted, timeout=timeout,
                                               max_records=max_records)
        faust_consumer = self.consumer
        active = faust_consumer._active_partitions
        if active is None:
            return records
        for tp in [tp for tp in records if tp not in active
                   and tp not in faust_consumer._buffered_partitions]:
            # Paused while the fetch waited: Faust would drop these. Read them again later.
            first = records.pop(tp)[0].offset
            consumer.seek(tp, first)
            log.info("records of %s/%s fetched while paused: sought back to offset %s",
                     tp.topic, tp.partition, first)
        return records


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _DrainingBuffer(ProducerBuffer):
    """Faust's queue of table (changelog) writes, which a table assignment cannot await.

    Faust flushes it before committing offsets, but its ``flush`` gives up as soon as no write
    has left the queue for 0.1 s (a send waiting for room in aiokafka's batches, a loaded
    machine), and does not wait for the write being sent at that moment. The offsets are then
    committed with table writes still queued; a worker killed -9 then loses them, and the
    records that made them are not read again (a count short, a key's lineage gone). This
    flush returns only once the queue is empty and no write is on its way to aiokafka."""

    sending = 0

    async def _send_pending(self, fut: Any) -> None:
        self.sending += 1
        try:
            await super()._send_pending(fut)
        finally:
            self.sending -= 1

    async def flush(self) -> None:
        while self.size or self.sending:
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            self.message_sent.clear()
            try:  # woken by each write sent; the timeout only re-checks the state
                await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)
            except TimeoutError:
                pass


class _Producer(faust_aiokafka.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer = _DrainingBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.buffer.app
        if self.threaded_producer is not None:
            buffer.threaded_producer = self.threaded_producer
        self.buffer = buffer


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport whose consumer never loses fetched records to a pause and
    whose producer's flush leaves no table write behind."""

    Consumer = _Consumer
    Producer = _Producer
