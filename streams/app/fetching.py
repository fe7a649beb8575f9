"""Faust's Kafka transport with one mend: records fetched for a partition Faust is not reading
are sought back, never handed over and dropped (the empty-disk stall of Faust 0.15.3 with
aiokafka 0.14; see ``_ConsumerThread``).
"""

from __future__ import annotations

import logging
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

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


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport whose consumer never loses fetched records to a pause."""

    Consumer = _Consumer
