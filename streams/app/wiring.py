"""The Faust app: ``track_instance_credentials`` records issued keys and passes every record about
instances on, in order, on its partition, to ``detect_credential_use``, which joins calls against
the co-partitioned tables through the core; bad records go to the dead-letter topic."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
import traceback
from typing import Any

import faust
from faust.types import EventT

from streams.app import lineage, metrics
from streams.app.broker_health import BrokerReachability, RepeatFilter, install_repeat_filter
from streams.app.fetching import Transport
from streams.app.readiness import ConsumerProgress, Progress
from streams.app.responses import ResponseNotes
from streams.app.restore import bulk_restoring_tables
from streams.app.state import STATE_TABLE, Section
from streams.aws.ipranges import load_aws_ranges, snapshot_age_seconds
from streams.config.loader import Config
from streams.core.detector import Detector, DetectorState
from streams.core.records import (
    ApiCall,
    Issuance,
    MalformedRecord,
    decode,
    decode_json,
    decode_record,
    minted_key,
    signing_keys,
    unwrap,
)
from streams.core.times import format_time
from streams.geo import enricher_for
from streams.kafka.batches import (
    NETWORK_ONLY,
    NETWORK_ONLY_HEADER,
    is_batch,
    is_network_only,
    records_of,
)
from streams.kafka.codec import FindingCodec, finding_codec
from streams.kafka.reader import PartitionReader
from streams.kafka.routing import (
    copies_on,
    counted_here,
    partition_for,
    route_of_event,
)
from streams.kafka.settings import KafkaSettings

log = logging.getLogger("exfilguard.worker")
MAX_REASON = 400  # header bytes; the full traceback goes to the worker's log
# Key lineage on the wire: a record signed with a derived key goes to its instance's partition
# with DERIVED naming the key; RESOLVED tells a minted key's partition whose key it is (the
# instance id, empty for none), known on the partition of the key that signed its AssumeRole.
DERIVED_HEADER = "exfilguard-derived-key"
RESOLVED_HEADER = "exfilguard-lineage-resolved"
# With RESOLVED: "minted ms,forget after ms" of the AssumeRole, so every partition keeps and
# forgets a key's lineage by the same event time.
MINTED_HEADER = "exfilguard-lineage-minted"


# The core's tables (DetectorState's fields), each a section of STATE_TABLE; before, each a
# Faust table of its own under its name (read through while kafka.legacy_tables is on).
TABLES = {
    "instance_credentials": "access key → instance, role, expiry",
    "instance_to_addresses": "account/instance → learned addresses, keys",
    "address_to_account": "ip:/alloc: → account, eni: → instance, from address changes",
    "finding_aggregates": "finding id → aggregate",
    "pending_calls": "access key → calls waiting for their issuance",
    "partition_clock": "event-time watermark and indexes, per partition",
    "offending_event_ids": "event id → seen, so an offending call counts once",
}
# Not the core's: which instance (or parent key) each minted key belongs to, on the partition
# of that key, written in order from the AssumeRole's copy under the key it minted.
LINEAGE_TABLES = {
    "key_lineage": "minted key → its instance id, pending (its signer), or untracked; expiry log",
    "lineage_parked": "pending minted key → its records waiting for the key to be resolved",
}


class FindingsTopic:
    """The stream's sink, the async twin of ``offline.sinks.Sink``: findings in the configured
    encoding to the findings topic, keyed by id, through Faust's producer (flushed before
    offsets commit)."""

    def __init__(self, topic: Any, codec: FindingCodec) -> None:
        self.topic = topic
        self.codec = codec

    async def send(self, finding: dict[str, Any]) -> None:
        await self.send_encoded(finding["id"], self.codec.encode(finding))

    async def send_encoded(self, finding_id: str, payload: bytes) -> None:
        await self.topic.send(key=finding_id.encode(), value=payload)


def rocksdb_options(kafka: KafkaSettings) -> dict[str, int]:
    """Each table partition's RocksDB memory, bounded (``kafka.rocksdb_*_mb``)."""
    mib = 1024 * 1024
    return {"write_buffer_size": kafka.rocksdb_write_buffer_mb * mib,
            "max_write_buffer_number": 2,
            "block_cache_size": kafka.rocksdb_block_cache_mb * mib}


def message_ms(event: EventT) -> int:
    """A message's timestamp in ms: Faust gives seconds (aiokafka's ms / 1000)."""
    return int(round((event.message.timestamp or 0) * 1000))


class Misrouted(ValueError):
    """A batched record on a partition none of its copies belongs on."""


def broker_credentials(settings: KafkaSettings) -> Any:
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    if settings.sasl_mechanism == "OAUTHBEARER":
        from streams.kafka.msk_iam import aiokafka_token_provider

        return faust.OAuthCredentials(oauth_cb=aiokafka_token_provider(settings.aws_region or ""),
                                      ssl_context=context)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username, password=settings.sasl_password,
            mechanism=settings.sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context)


def create_app(loaded: Config) -> faust.App:
    kafka = loaded.kafka
    detection = loaded.detection
    app = faust.App(
        kafka.app_id,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(kafka),
        store="rocksdb://",
        TableManager=bulk_restoring_tables(kafka.confluent(), kafka.bulk_restore_min_messages),
        datadir=kafka.data_dir,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=True,
        processing_guarantee="at_least_once",
        # Findings and changelogs are written once every in-sync replica has them (Faust's
        # default, stated): a leader lost after the ack loses nothing (min.insync.replicas).
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        web_host=kafka.web_host,
        web_bind=kafka.web_host,  # Faust binds 0.0.0.0 otherwise, whatever web_host says
        web_port=kafka.web_port,
        web_in_thread=False,
        # Faust's own pages show table contents (watched keys, findings) to anyone who can
        # reach the port: off. Only /livez, /readyz and /metrics, defined below, are served.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        table_standby_replicas=0,
        # A crashed worker's partitions move to the others after this long (Faust's default is
        # 60 s); heartbeats every 3 s keep a busy but healthy worker in the group.
        broker_session_timeout=30.0,
        # Faust fetches 1 MB a partition by default (~650 CloudTrail records) and then waits on
        # idle partitions: bigger fetches about double a worker's records/s (see Performance).
        consumer_max_fetch_size=16 * 1024 * 1024,
        broker_heartbeat_interval=3.0,
        # A topic the worker declared at start-up but that the consumer's first metadata missed
        # (the broker was still creating it) is found at the next refresh: every 10 s, not 5 min.
        consumer_metadata_max_age_ms=10_000,
    )
    app.transport = Transport(app.conf.broker_consumer, app)
    # Faust's index page ("/", always on when its statistics are off) goes too.
    app.web.blueprints = type(app.web.blueprints)([])
    partitions = kafka.partitions
    cloudtrail = app.topic(kafka.topic_input, key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw", partitions=partitions)
    instance_events = app.topic(f"{kafka.app_id}-instance-events", key_type=bytes,
                               value_type=bytes, key_serializer="raw", value_serializer="raw",
                               partitions=partitions, internal=True)
    findings_topic = app.topic(kafka.topic_findings, key_serializer="raw",
                               value_serializer="raw")
    dead_letters = app.topic(kafka.topic_dlq, key_serializer="raw", value_serializer="raw")
    progress = Progress(kafka.stall_seconds)
    stalls = ConsumerProgress(app, progress,
                              lambda: {kafka.topic_input, instance_events.get_topic_name()})

    rocksdb = rocksdb_options(kafka)

    def table(name: str, help_text: str) -> faust.Table:
        return app.Table(name, partitions=partitions, key_type=str, value_type=None,
                         help=help_text, options=rocksdb)

    # The core's tables in one Faust table, so a record's writes reach one changelog in order
    # (streams/app/state.py); the tables each field had to itself before are read through.
    core_state = table(STATE_TABLE, "<table>/<key> → value, for each of the core's tables")
    legacy = ({name: table(name, text) for name, text in TABLES.items()}
              if kafka.legacy_tables else {})
    state = DetectorState(**{name: Section(core_state, name, legacy.get(name))
                             for name in TABLES})
    # Wall-clock, outside the core: when this job first emitted each finding (epoch ms).
    first_emitted = table("finding_first_emitted", "finding id → wall-clock ms first emitted")
    key_lineage, lineage_parked = (table(name, text) for name, text in LINEAGE_TABLES.items())
    aws = load_aws_ranges(detection)
    ranges_age = snapshot_age_seconds(aws.create_date)
    if ranges_age is not None and ranges_age > kafka.ip_ranges_warn_days * 86400:
        log.warning("the AWS ip-ranges snapshot (createDate %s) is %.0f days old: addresses AWS "
                    "added since are judged outside AWS; run `exfilguard ip-ranges update`",
                    aws.create_date, ranges_age / 86400)
    # Wall-clock time, for the metrics only: the newest eventTime seen, in ms.
    newest_event_ms = [0]
    repeats = RepeatFilter(kafka.log_repeat_seconds)
    reachability = BrokerReachability(kafka.bootstrap_servers, kafka.broker_unready_seconds,
                                      kafka.log_repeat_seconds, repeats)
    detector = Detector(detection, aws, state, enrich=enricher_for(loaded))
    codec = finding_codec(kafka)  # registers the schema first when the encoding is confluent
    interval = detection.finding_update_interval_seconds
    last_sent: dict[str, tuple[float, int]] = {}  # finding id → (monotonic time, severity)
    # Updates held back by the interval, as the bytes to send: publishable after the tables
    # are gone (shutdown revokes the partitions first).
    unsent: dict[str, bytes] = {}
    kinds: dict[str, str] = {}  # finding id → OutsideAWS / InsideAWS, for the metric's label

    def kind_of(rendered: dict) -> None:
        kinds[rendered["id"]] = rendered["type"].rsplit(".", 1)[-1]

    def stamp(rendered: dict, in_event: bool = True) -> dict:
        """``service.additionalInfo.detectedAt``: the first emission's wall-clock time, kept
        in a table so updates and a restarted worker repeat it."""
        finding_id = rendered["id"]
        first = first_emitted.get(finding_id)
        if first is None:
            first = int(time.time() * 1000)
            if in_event:  # a table is written only while a record is being processed
                first_emitted[finding_id] = first
        rendered["service"]["additionalInfo"]["detectedAt"] = format_time(first)
        note = notes.note(finding_id)  # respond's note, kept on every later version
        if note is not None:
            rendered["service"]["additionalInfo"]["response"] = note
        return rendered

    sink = FindingsTopic(findings_topic, codec)
    notes = ResponseNotes(kafka)

    async def send_encoded(finding_id: str, payload: bytes, severity: int) -> None:
        await sink.send_encoded(finding_id, payload)
        last_sent[finding_id] = (time.monotonic(), severity)
        unsent.pop(finding_id, None)
        metrics.inc("exfilguard_findings_emitted_total", type=kinds.get(finding_id, "unknown"),
                    severity=str(severity))

    async def publish(changed: list[str]) -> None:
        now = time.monotonic()
        for finding_id in changed:
            rendered = stamp(detector.render(finding_id))
            kind_of(rendered)
            payload = codec.encode(rendered)
            previous = last_sent.get(finding_id)
            if (previous is None or interval == 0 or now - previous[0] >= interval
                    or rendered["severity"] != previous[1]):
                await send_encoded(finding_id, payload, rendered["severity"])
            else:
                unsent[finding_id] = payload

    async def dead_letter(event: EventT, reason: str, line: int | None = None,
                          value: bytes | None = None) -> None:
        metrics.inc("exfilguard_records_dead_lettered_total", reason=reason.split(":", 1)[0])
        message = event.message
        source = f"{message.topic}/{message.partition}/{message.offset}"
        headers = {
            "exfilguard-reason": reason[:MAX_REASON].encode(),
            # A record of a batch: its line, counted from 1.
            "exfilguard-source": (source if line is None else f"{source}#{line}").encode(),
        }
        if is_network_only(event.headers):  # so `exfilguard dlq redrive` sends it back alike
            headers[NETWORK_ONLY_HEADER] = b"1"
        await dead_letters.send(key=message.key,
                                value=value if value is not None else message.value or b"",
                                headers=headers)

    def lineage_of(key: str) -> dict | None:
        return key_lineage.get(key) if key.startswith("ASIA") else None

    # Per input partition, in memory: the last offset read, and when key_lineage's expiry log
    # is next due (absent: not looked at since the partition was assigned).
    input_position: dict[int, int] = {}
    lineage_due: dict[int, int | None] = {}
    input_reader = PartitionReader(kafka, kafka.topic_input)

    def keep_lineage(child: str, entry: dict, times: tuple[int, int]) -> None:
        at, until = times
        key_lineage[child] = {**entry, "at": at, "until": until}
        lineage.remember(key_lineage, child, until)
        partition = partition_for(child.encode(), partitions)
        due = lineage_due.get(partition)
        if partition in lineage_due and (due is None or until < due):
            lineage_due[partition] = until

    def expire_lineage(partition: int, event_ms: int) -> None:
        if partition in lineage_due and (lineage_due[partition] is None
                                         or event_ms <= lineage_due[partition]):
            return
        lineage_due[partition] = lineage.expire(key_lineage, event_ms, also=(lineage_parked,))

    def times_of(raw: bytes) -> tuple[int, int]:
        return lineage.minting_times(unwrap(decode_json(raw)))

    async def resolve(child: str, instance: str | None, times: tuple[int, int]) -> None:
        """Tell the partition of a minted key whose it is (an instance id, or None: no one's
        we track); its records parked there meanwhile go on."""
        target = child.encode()
        await instance_events.send(key=target, value=b"", partition=partition_for(
            target, partitions), headers=[(RESOLVED_HEADER, (instance or "").encode()),
                                          (MINTED_HEADER, f"{times[0]},{times[1]}".encode())])

    async def signed_by(key: str, entry: dict, raw: bytes, child: str | None,
                        times: tuple[int, int] | None = None) -> None:
        """A record signed with a minted ``key`` whose lineage is ``entry``: to its instance's
        partition, parked while pending; a key it mints is resolved as its signer is."""
        if "pending" in entry:
            parked = lineage_parked.get(key) or []
            if len(parked) < detection.max_pending_per_key:
                parked.append([base64.b64encode(raw).decode(), child])
                lineage_parked[key] = parked
            else:
                metrics.inc("exfilguard_derived_records_dropped_total")
            return
        instance = entry.get("instance")
        if instance is not None:
            metrics.inc("exfilguard_derived_records_rekeyed_total")
            target = instance.encode()
            await instance_events.send(key=target, value=raw, headers=[
                (DERIVED_HEADER, key.encode())], partition=partition_for(target, partitions))
        if child is not None and child != key:
            await resolve(child, instance, times or times_of(raw))

    async def on_resolved(child: str, instance: str | None, times: tuple[int, int],
                          upto: tuple[int, int] | None = None) -> None:
        """Whose ``child`` is, known: its parked records go on, and when it is an instance's,
        the records it signed that were read before this (its calls arriving before any copy
        of the AssumeRole that minted it) are read again up to ``upto`` (offset, line) of the
        input partition; None: up to the last offset read there."""
        entry = key_lineage.get(child)
        if entry is not None and "pending" not in entry and not (
                entry.get("untracked") and instance):
            return  # resolved already (a redelivery)
        upto = upto or (tuple(entry["upto"]) if entry and entry.get("upto") else None)
        entry = {"instance": instance} if instance else {"untracked": True}
        # What was sent reaches Kafka before the lineage says resolved, and the resolution
        # before the parked records go: a worker killed -9 between them resolves the key again
        # when this record comes again (its records sent again, counted once), where in any
        # other order the key's records could be lost. Records the other agent parks while a
        # flush waits are sent too, before the key is marked resolved (no await in between).
        sent, recovered = 0, False
        while True:
            parked = lineage_parked.get(child) or []
            for raw, minted in parked[sent:]:
                await signed_by(child, entry, base64.b64decode(raw), minted)
            sent = len(parked)
            if instance and not recovered:
                await recover_early(child, entry, times[0], upto)
                recovered = True
            await app.producer.flush()
            if len(lineage_parked.get(child) or []) == sent:
                break
        keep_lineage(child, entry, times)  # from here on its records go on, none is parked
        if sent:
            await app.producer.flush()
            del lineage_parked[child]

    async def recover_early(child: str, entry: dict, minted_ms: int,
                            upto: tuple[int, int] | None) -> None:
        """The records signed with ``child`` read before its lineage was known: a key is used
        only after it is minted, so they lie among the messages timestamped since."""
        partition = partition_for(child.encode(), partitions)
        if upto is None:
            upto = (input_position.get(partition, -1) + 1, 0)
        try:
            messages = await asyncio.get_running_loop().run_in_executor(
                None, input_reader.read, partition, minted_ms, upto[0] + 1)
        except Exception as exc:  # the key is bound whatever: only its early records are lost
            metrics.inc("exfilguard_derived_records_recovery_failed_total")
            log.error("derived key %s: its records read before its AssumeRole not read again "
                      "(%s/%s): %s: %s", child, kafka.topic_input, partition,
                      type(exc).__name__, exc)
            return
        needle = child.encode()
        for offset, headers, value in messages:
            for line, raw in records_of(value, headers):
                if (offset, line or 0) >= upto or needle not in raw:
                    continue
                try:
                    record = unwrap(decode_json(raw))
                except ValueError:
                    continue  # dead-lettered when it was read
                if not isinstance(record, dict):
                    continue
                identity = record.get("userIdentity")
                if not isinstance(identity, dict) or identity.get("accessKeyId") != child:
                    continue
                metrics.inc("exfilguard_derived_records_recovered_total")
                await signed_by(child, entry, raw, minted_key(record))

    async def follow_lineage(event: EventT, raw: bytes, record: Any, batched: bool,
                             line: int | None) -> bool:
        """A record no instance session signed: learn the key an AssumeRole minted (its copy
        under that key), or pass on a minted key's record. True when it was one of them."""
        if record is None:  # skipped undecoded: one lookup of each key it names
            for key in signing_keys(raw):
                entry = lineage_of(key.decode(errors="replace"))
                if entry is not None:
                    await signed_by(key.decode(), entry, raw, None)
                    return True
            return False
        record = unwrap(record)
        identity = record.get("userIdentity") if isinstance(record, dict) else None
        signer = identity.get("accessKeyId") if isinstance(identity, dict) else None
        if not isinstance(signer, str):
            return False
        child = minted_key(record)
        times = lineage.minting_times(record) if child is not None else None
        copies = ([key for key, _ in copies_on(route_of_event(None, record),
                                               event.message.partition, partitions)]
                  if batched else [event.key])
        followed = False
        for key in copies:
            if child is not None and key == child.encode():
                # Whether the signer's key is an instance's is known on its own partition,
                # which resolves it; the child's records wait here till then (those read
                # before this are read again up to here once it is an instance's).
                if child not in key_lineage:
                    keep_lineage(child, {"pending": signer,
                                         "upto": [event.message.offset, line or 0]}, times)
                followed = True
            elif (entry := lineage_of(signer)) is not None:
                await signed_by(signer, entry, raw, child, times)
                followed = True
            elif child is not None:
                await resolve(child, None, times)  # signed with a key no instance minted
                followed = True
        return followed

    async def track(event: EventT, raw: bytes, batched: bool, line: int | None = None) -> None:
        """One record: an issuance is recorded at once; what concerns instances goes on to the
        second agent, on this partition, as the copies one-per-record forwarding makes."""
        parsed, record = decode_record(raw)
        if parsed is None:
            followed = await follow_lineage(event, raw, record, batched, line)
            # An AssumeRole minting a key has a copy on the signer's and the child's partition:
            # counted on one; every other record has one copy, counted where it is.
            if not followed or record is None or counted_here(
                    route_of_event(None, unwrap(record)), event.message.partition, partitions,
                    batched, event.key, is_network_only(event.headers)):
                metrics.inc("exfilguard_records_total")
            return
        partition = event.message.partition
        route = route_of_event(parsed, record)
        if counted_here(route, partition, partitions, batched, event.key,
                         is_network_only(event.headers)):
            metrics.inc("exfilguard_records_total")
            metrics.inc("exfilguard_records_relevant_total")
        newest_event_ms[0] = max(newest_event_ms[0], parsed.event_time)
        if batched:
            copies = copies_on(route, partition, partitions)
            if not copies:
                raise Misrouted(f"belongs on another partition than {partition}: the topic's "
                                f"partition count is not kafka.partitions ({partitions})")
        else:
            copies = [(event.key, is_network_only(event.headers))]
        if isinstance(parsed, Issuance):
            detector.track_issuance(parsed)
        minted = (parsed.derivation.child_key if isinstance(parsed, ApiCall)
                  and parsed.derivation is not None else None)
        for key, network_only in copies:
            if minted is not None and key == minted.encode():
                # The copy under the key an instance session minted: its calls come here.
                await on_resolved(minted, parsed.instance_id,
                                  lineage.minting_times(unwrap(record)),
                                  (event.message.offset, line or 0))
                continue
            await instance_events.send(key=key, value=raw, partition=partition,
                                       headers=NETWORK_ONLY if network_only else None)

    @app.agent(cloudtrail, concurrency=1)
    async def track_instance_credentials(stream: faust.StreamT) -> None:
        """Read CloudTrail: record issued keys at once, pass what concerns instances on, in
        order, on the same partition; everything else (~95%) is skipped undecoded. A message
        is one record, or a batch of records one per line (``exfilguard forward``)."""
        async for event in stream.events():
            await track_message(event)
            progress.finished(event.message.topic, event.message.partition, event.message.offset)

    async def track_message(event: EventT) -> None:
        value = event.value
        input_position[event.message.partition] = event.message.offset
        if event.message.timestamp:  # the forwarder's: the earliest eventTime it carries
            at_ms = message_ms(event)
            newest_event_ms[0] = max(newest_event_ms[0], at_ms)
            expire_lineage(event.message.partition, at_ms)
        if not isinstance(value, bytes | bytearray) or not value:
            metrics.inc("exfilguard_records_total")
            await dead_letter(event, "malformed: empty record (no message value)")
            return
        value = bytes(value)
        batched = is_batch(event.headers)
        for line, raw in records_of(value, event.headers):
            try:
                await track(event, raw, batched, line)  # counts the record where it counts
            except (MalformedRecord, Misrouted) as exc:
                metrics.inc("exfilguard_records_total")
                await dead_letter(event, f"malformed: {exc}", line, raw)
            except Exception as exc:  # never let one record stop the worker
                metrics.inc("exfilguard_records_total")
                log.error("record %s/%s/%s%s failed:\n%s", event.message.topic,
                          event.message.partition, event.message.offset,
                          f"#{line}" if line else "", traceback.format_exc())
                await dead_letter(event, f"error: {type(exc).__name__}: {exc}", line, raw)

    @app.agent(instance_events, concurrency=1)
    async def detect_credential_use(stream: faust.StreamT) -> None:
        """Join each call against the tables through the core, in partition order, and publish
        the findings it changes; issuances and address changes update the tables on the way."""
        async for event in stream.events():
            try:
                headers = dict(event.headers or {})
                if RESOLVED_HEADER in headers:
                    instance = bytes(headers[RESOLVED_HEADER]).decode() or None
                    minted = headers.get(MINTED_HEADER)
                    if minted is not None:
                        at, until = (int(t) for t in bytes(minted).split(b","))
                    else:  # sent by an earlier version: the message's time stands in
                        at = message_ms(event)
                        until = at + lineage.MINTED_KEY_MAX_MS + lineage.OFFENDING_ID_KEPT_MS
                    await on_resolved(event.key.decode(), instance, (at, until))
                    progress.finished(event.message.topic, event.message.partition,
                                      event.message.offset)
                    continue
                derived_key = headers.get(DERIVED_HEADER)
                derived = (frozenset({bytes(derived_key).decode()}) if derived_key is not None
                           else frozenset())
                parsed = decode(bytes(event.value), derived)
                scope = event.key.decode() if isinstance(event.key, bytes) else None
                if isinstance(parsed, ApiCall):
                    metrics.inc("exfilguard_calls_judged_total")
                    if parsed.network is not None and is_network_only(event.headers):
                        # A broadcast copy of an instance role changing addresses: the change
                        # only; the call itself is judged on its instance's partition.
                        parsed = parsed.network
                if parsed is not None:
                    # Its offset tells this message read again after a restart from a
                    # duplicate delivery of its record (Detector._counted_here).
                    await publish(detector.observe(parsed, scope_instance=scope,
                                                   position=event.message.offset))
                    detector.retired.clear()  # published: a retired finding is not kept here
            except Exception as exc:
                log.error("event %s/%s/%s failed:\n%s", event.message.topic,
                          event.message.partition, event.message.offset, traceback.format_exc())
                await dead_letter(event, f"error: {type(exc).__name__}: {exc}")
            progress.finished(event.message.topic, event.message.partition, event.message.offset)

    @app.timer(interval=max(1.0, min(interval, 30)) if interval else 5.0)
    async def send_due_updates() -> None:
        now = time.monotonic()
        for finding_id in sorted(unsent):
            sent_at, severity = last_sent.get(finding_id, (0.0, 0))
            if now - sent_at >= interval:
                await send_encoded(finding_id, unsent[finding_id], severity)

    @app.task
    async def follow_responses() -> None:
        notes.ensure_started()

    @app.timer(interval=1.0)
    async def publish_responses() -> None:
        """A note arrived or changed: the held finding's current version, with it, at once
        (an update held back or sent before the note would otherwise be its last word)."""
        for finding_id in notes.take_changed():
            if finding_id not in state.finding_aggregates:
                continue  # another worker's partition, or a finding no longer held
            try:
                rendered = stamp(detector.render(finding_id), in_event=False)
                kind_of(rendered)
                payload = codec.encode(rendered)
            except Exception:  # one finding that cannot render never stops the others
                log.error("finding %s cannot be rendered with its response note:\n%s",
                          finding_id, traceback.format_exc())
                continue
            await send_encoded(finding_id, payload, rendered["severity"])

    @app.on_rebalance_complete.connect
    async def resend_held_findings(sender: Any = None, **kwargs: Any) -> None:
        lineage_due.clear()  # partitions may have moved: look at their expiry logs afresh
        # In-memory bookkeeping is lost on a restart: publish every held finding once again
        # (ids are stable, so consumers see an idempotent update) so no update is lost; with
        # the response notes read first, so the republished versions keep them.
        notes.ensure_started()
        if not await asyncio.to_thread(notes.wait_caught_up, 60.0):
            log.warning("responses: %s not read to its end in 60 s; findings republished "
                        "now get their notes when they arrive", kafka.topic_responses)
        for finding_id in list(state.finding_aggregates.keys()):
            if finding_id not in last_sent and finding_id in state.finding_aggregates:
                try:
                    rendered = stamp(detector.render(finding_id), in_event=False)
                    kind_of(rendered)
                    payload = codec.encode(rendered)
                except Exception:  # one held finding that cannot render never stops a restart
                    log.error("held finding %s cannot be rendered; not resent:\n%s", finding_id,
                              traceback.format_exc())
                    continue
                await send_encoded(finding_id, payload, rendered["severity"])

    @app.on_before_shutdown.connect
    async def flush_unsent(sender: Any = None, **kwargs: Any) -> None:
        notes.stopping.set()
        input_reader.close()
        for finding_id in sorted(unsent):
            sent_at, severity = last_sent.get(finding_id, (0.0, 0))
            await send_encoded(finding_id, unsent[finding_id], severity)
        await app.producer.flush()

    @app.page("/livez")
    async def livez(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.timer(interval=float(kafka.broker_probe_seconds))
    async def probe_broker() -> None:
        if not getattr(repeats, "installed", False):
            install_repeat_filter(repeats)  # Faust's worker has set up its log handlers now
            repeats.installed = True
        reachability.observe(await reachability.probe())

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        recovery = app.tables.recovery
        # Each condition is its own function: tables, the broker (broker_health), stalls.
        conditions = {
            "tables_recovered": (recovery.completed.is_set() and not app.rebalancing
                                 and changelogs_known()),
            "broker_reachable": reachability.ready(),
        }
        ready = all(conditions.values())
        body: dict[str, Any] = {"ready": ready, **conditions}
        if ready:
            stalled = await stalled_partitions()
            if stalled:
                body = {**body, "ready": False, "stalled": stalled,
                        "reason": f"records waiting, none read for over {kafka.stall_seconds} s "
                                  "(kafka.stall_seconds)"}
        return web.json(body, status=200 if body["ready"] else 503)

    def changelogs_known() -> bool:
        """Every table's changelog, and the topic between the agents, in the consumer's
        metadata: a table written before then fails Faust's partition check (its record would
        be dead-lettered), and a topic missing there gets no partitions assigned."""
        names = [table.changelog_topic.get_topic_name() for table in app.tables.values()]
        try:
            # The client's cluster metadata, not Faust's topic_partitions: that reads aiokafka's
            # group metadata snapshot, which only the group's leader keeps (a second worker
            # would never turn ready).
            cluster = app.consumer._thread._consumer._client.cluster
            return all(cluster.partitions_for_topic(name)
                       for name in [*names, instance_events.get_topic_name()])
        except Exception:  # no consumer yet (starting): not ready
            return False

    async def stalled_partitions() -> list[str]:
        try:
            stalled = await stalls.stalled(time.monotonic())
        except Exception as exc:  # a probe never fails on its own error; the log says why
            log.warning("readiness: stall check failed: %s: %s", type(exc).__name__, exc)
            return []
        return [f"{topic}/{partition}" for topic, partition in stalled]

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        counters = detector.counters
        for name, value in (("exfilguard_issuances_total", counters.issuances),
                            ("exfilguard_calls_dropped_not_instance_total",
                             counters.calls_dropped_not_instance),
                            ("exfilguard_network_changes_total", counters.network_changes),
                            ("exfilguard_vpc_endpoint_owner_unknown_total",
                             counters.calls_endpoint_owner_unknown)):
            metrics.COUNTERS[(name, ())] = value
        gauges = [metrics.Gauge("exfilguard_findings_unsent",
                                "finding updates held back by finding_update_interval_seconds"
                                ).set(len(unsent)),
                  _lag_gauge(app, kafka.topic_input)]
        if newest_event_ms[0]:
            gauges.append(metrics.Gauge(
                "exfilguard_event_time_lag_seconds",
                "wall-clock time now minus the newest eventTime seen: is CloudTrail flowing?",
            ).set(round(time.time() - newest_event_ms[0] / 1000, 3)))
        if ranges_age is not None:
            gauges.append(metrics.Gauge(
                "exfilguard_ip_ranges_age_seconds",
                "age of the AWS ip-ranges snapshot in use (its createDate)",
            ).set(round(snapshot_age_seconds(aws.create_date) or 0.0)))
        gauges.append(metrics.Gauge("exfilguard_broker_reachable",
                                    "1 while a bootstrap server accepts connections"
                                    ).set(1 if reachability.ready() else 0))
        return web.text(metrics.render_prometheus(gauges),
                        content_type="text/plain; version=0.0.4")

    if kafka.web_live_view:
        from streams.app.live import install

        install(app, kafka, codec)
    app.exfilguard = {"detector": detector, "state": state}  # for tests and introspection
    return app


def _lag_gauge(app: faust.App, topic: str) -> metrics.Gauge:
    """Per assigned input partition: the high watermark minus the next offset to read."""
    gauge = metrics.Gauge("exfilguard_consumer_lag",
                          "messages of the input topic not yet read, per assigned partition")
    consumer = app.consumer
    try:
        assigned = consumer.assignment()
    except Exception:  # no consumer yet (starting, rebalancing): no series
        return gauge
    read = getattr(consumer, "_read_offset", {})
    for tp in sorted(tp for tp in assigned if tp.topic == topic):
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        position = read.get(tp)
        next_offset = position + 1 if position is not None else 0
        gauge.set(max(0, highwater - next_offset), topic=tp.topic, partition=str(tp.partition))
    return gauge
