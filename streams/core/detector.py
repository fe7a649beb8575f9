"""The detector: events in ``order_key`` order in, changed findings out, state passed in as
mappings (dicts offline, Faust tables in the stream; values written back after each change). Calls
whose key has not been seen issued wait, bounded, for the late-arrival grace of event time."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import astuple, dataclass, field, replace
from typing import Any

from streams.core.awsranges import AwsIpRanges
from streams.core.findings import IpEnricher, new_aggregate, render, update_aggregate
from streams.core.records import (
    ASSIGN_EVENTS,
    ApiCall,
    Derivation,
    Event,
    Issuance,
    NetworkChange,
)
from streams.core.rules import Addresses, classify
from streams.core.settings import DetectionConfig
from streams.core.times import MS_PER_S

MAX_INSTANCE_ADDRESSES = 16  # learned per instance; the oldest goes first
# Address resets (stop/start) remembered per instance with the addresses before each, so a call
# from before a reset that comes after it (late, or again after a worker's restart) is judged
# against the addresses of its own time, as `detect` judges it in order.
MAX_RESETS_KEPT = 4
# The stream: the offending ids a finding's aggregate keeps with its count (see _counted_here).
RECENT_IDS_KEPT = 32
# Key lineage: a key minted with an instance's key (or one derived from it) is the instance's
# too, up to this many AssumeRole hops from the instance key; raise it for deeper role chains.
MAX_DERIVATION_DEPTH = 8
# A console session opened with an instance's key (GetSigninToken, then ConsoleLogin) lasts at
# most 12 hours (the sign-in token's federation ceiling); its keys are derived keys meanwhile.
CONSOLE_SESSION_MS = 12 * 3600 * 1000
SIGNIN = "signin.amazonaws.com"
WATERMARK = "watermark"
# When each instance's oldest waiting call is due, in buckets of a second of due time (clock
# keys PENDING_DUE + second, and the list of seconds held): an instance's calls moving touch
# one small bucket, not an index of every instance waiting, which a table would write whole
# to its changelog each time.
PENDING_BUCKETS = "pending_buckets"
PENDING_DUE = "pending_due/"
BUCKET_MS = 1_000
LEGACY_PENDING_INDEX = "pending_index"  # one value for all instances, as first released
# Terminated instances, by when their last key stops working, in buckets of a minute.
RETIRING_BUCKETS = "retiring_buckets"
RETIRING_DUE = "retiring_due/"
RETIRING_BUCKET_MS = 60_000
LEGACY_RETIRING = "retiring"  # one value for all terminated instances, as first released
# An offending call's event id is kept while a redelivery can still come: CloudTrail's duplicates
# and a restarted worker's re-reads arrive within hours. A day past the latest its key can expire
# (instance credentials live at most 6 hours) is ample; raise it here if you replay older input.
INSTANCE_CREDENTIAL_MAX_MS = 6 * 3600 * MS_PER_S
OFFENDING_ID_KEPT_MS = 24 * 3600 * MS_PER_S
# The ids in the order they were first seen, in chunks, so each offending call writes one small
# chunk and expiry reads from the oldest end: clock keys SEEN_LOG + n, and SEEN_SPAN [oldest, next].
SEEN_LOG = "seen_log/"
SEEN_SPAN = "seen_span"
SEEN_CHUNK = 64
# An instance whose end the trail does not show (no TerminateInstances: missed, or made where
# the trail does not reach) is forgotten once every key it had has expired past the credential
# grace and nothing happened to it for as long. Each instance is looked at again from a time
# on, in a log of chunks as the offending ids are (every live instance has an entry, so one
# value per due time would be written whole for each): clock keys IDLE_LOG + n, IDLE_SPAN.
IDLE_LOG = "idle_log/"
IDLE_SPAN = "idle_span"
IDLE_CHUNK_MS = 3600 * MS_PER_S  # a chunk holds due times within an hour of its first
# Entries per chunk: every new instance writes its chunk whole (a worker's first hour writes one
# for each instance it meets), so chunks stay small: ~250 bytes a write.
IDLE_CHUNK = 8
# A released address is remembered as its account's until its release, as long as offending
# ids are (a redelivered call from before the release is judged as it was): address_to_account
# keys "released:" + address → [account, release time], forgotten through RELEASED_LOG + n.
RELEASED_KEPT_MS = OFFENDING_ID_KEPT_MS
RELEASED_LOG = "released_log/"
RELEASED_SPAN = "released_span"
# + allocation id → [its address, release time], kept as long (the release's shape: a version
# that knows only released addresses forgets these as it forgets those)
RELEASED_ALLOCATION = "released:alloc:"
# Allocation and NAT gateway ids are their account's: keys "alloc:<account>/<id>" (likewise
# "released:alloc:", "nat:"), so one account's association never resolves another's allocation
# (one trail holds many accounts; a record read again after a release must not move an address
# to another account). Keys an earlier version wrote without the account are read where the
# account is known to hold, or to have released, the address they name.


@dataclass
class DetectorState:
    """Where the detector keeps what it knows; each field a mutable mapping."""

    # Named as the Faust tables that hold them in the stream (streams.app.wiring).
    instance_credentials: MutableMapping[str, Any] = field(default_factory=dict)  # access key →
    instance_to_addresses: MutableMapping[str, Any] = field(default_factory=dict)  # acct/instance →
    # ip: → account, alloc: → ip, eni: → instance, nat: → its own allocations,
    # released: → [account, when]
    address_to_account: MutableMapping[str, Any] = field(default_factory=dict)
    finding_aggregates: MutableMapping[str, Any] = field(default_factory=dict)  # id → aggregate
    pending_calls: MutableMapping[str, Any] = field(default_factory=dict)  # instance → calls
    partition_clock: MutableMapping[str, Any] = field(default_factory=dict)  # watermark, indexes
    offending_event_ids: MutableMapping[str, Any] = field(default_factory=dict)  # counted once


@dataclass
class Counters:
    issuances: int = 0
    calls_judged: int = 0
    calls_pending: int = 0
    calls_dropped_not_instance: int = 0
    network_changes: int = 0
    findings_new: int = 0
    findings_updated: int = 0
    calls_endpoint_owner_unknown: int = 0  # through an endpoint no owner is known for


def _call_to_json(call: ApiCall) -> list:
    values = [getattr(call, name) for name in ApiCall.__slots__]
    if call.derivation is not None:  # a table holds JSON: the derivation as its field values
        values[_DERIVATION] = list(astuple(call.derivation))
    return values


def _call_from_json(values: list) -> ApiCall:
    # Values written before a field was added take its default; a value after the fields (the
    # position of the call's own record, kept by an earlier version) is not needed.
    call = ApiCall(*values[:_FIELDS])
    if isinstance(call.derivation, list):
        call = replace(call, derivation=Derivation(*call.derivation))
    return call


_FIELDS = len(ApiCall.__slots__)
_ID = ApiCall.__slots__.index("event_id")
_DERIVATION = ApiCall.__slots__.index("derivation")
_TIME = ApiCall.__slots__.index("event_time")


def _queue_order(values: list) -> tuple:
    return (values[_TIME], values[_ID])


def _waits_from(values: list) -> int:
    """When a waiting call's grace starts: its event time, or for a derived key's call that
    reached the partition after its clock had passed that, the clock then (``{"from": ms}``
    after the fields; an earlier version kept its record's position there)."""
    extra = values[_FIELDS] if len(values) > _FIELDS else None
    return extra["from"] if isinstance(extra, dict) else values[_TIME]


class _DueIndex:
    """When each instance is due (its oldest waiting call, or its retirement), read and written
    a bucket at a time. A worker killed -9 keeps a prefix of the writes of ``save``, so they go
    in an order that leaves every instance findable at each step: the buckets an instance
    moved to, holding what they held too, then the list of buckets, then the buckets it left
    (an entry left behind is stale: its instance's queue says when it is due)."""

    def __init__(self, clock: MutableMapping[str, Any], buckets: str = PENDING_BUCKETS,
                 prefix: str = PENDING_DUE, bucket_ms: int = BUCKET_MS,
                 legacy: str = LEGACY_PENDING_INDEX) -> None:
        self.clock = clock
        self.buckets = buckets
        self.prefix = prefix
        self.bucket_ms = bucket_ms
        self.legacy = legacy
        self.loaded: dict[int, dict[str, int]] = {}
        self.stored: dict[int, dict[str, int]] = {}  # as the table holds each bucket loaded
        self.dirty: set[int] = set()
        self.listed: set[int] | None = None  # the list of buckets as read, once

    def _bucket(self, bucket: int) -> dict[str, int]:
        held = self.loaded.get(bucket)
        if held is None:
            held = self.loaded[bucket] = self.clock.get(f"{self.prefix}{bucket}") or {}
            self.stored[bucket] = dict(held)
        return held

    def _listed(self) -> set[int]:
        if self.listed is None:
            self.listed = set(self.clock.get(self.buckets) or ())
        return self.listed

    def move(self, instance_key: str, before: int | None, after: int | None) -> None:
        if before == after:
            if after is not None:
                # Where the instance was due, it still is: after a kill that kept its queue
                # and lost this entry or its bucket's place in the list (both written after
                # it), they are written again.
                number = after // self.bucket_ms
                bucket = self._bucket(number)
                if bucket.get(instance_key) != after or number not in self._listed():
                    bucket[instance_key] = after
                    self.dirty.add(number)
            return
        if before is not None:
            bucket = before // self.bucket_ms
            if self._bucket(bucket).pop(instance_key, None) is not None:
                self.dirty.add(bucket)
        if after is not None:
            bucket = after // self.bucket_ms
            self._bucket(bucket)[instance_key] = after
            self.dirty.add(bucket)

    def due(self, watermark: int | None) -> list[tuple[int, str]]:
        """(due time, instance) of every instance due by ``watermark`` (None: all), in order."""
        legacy = self.clock.get(self.legacy)
        if legacy is not None:  # state written before the buckets: moved over once
            for instance_key, at in legacy.items():
                self.move(instance_key, None, at)
            self.save()
            del self.clock[self.legacy]
        due = []
        for bucket in self.clock.get(self.buckets) or []:
            if watermark is not None and bucket * self.bucket_ms > watermark:
                break
            due += [(at, key) for key, at in self._bucket(bucket).items()
                    if watermark is None or at <= watermark]
        return sorted(due)

    def save(self) -> None:
        if not self.dirty:
            return
        held = self.clock.get(self.buckets) or []
        dirty = sorted(self.dirty)
        for bucket in dirty:  # what gained an entry, keeping what it had
            loaded, stored = self.loaded[bucket], self.stored[bucket]
            if any(stored.get(key) != at for key, at in loaded.items()):
                stored = self.stored[bucket] = {**stored, **loaded}
                self.clock[f"{self.prefix}{bucket}"] = stored
        listed = sorted(set(held) | {bucket for bucket in dirty if self.stored[bucket]})
        if listed != held:
            self.clock[self.buckets] = listed
        for bucket in dirty:  # then what lost one
            key, loaded = f"{self.prefix}{bucket}", self.loaded[bucket]
            if loaded and self.stored[bucket] != loaded:
                self.clock[key] = dict(loaded)
            elif not loaded and self.stored[bucket]:
                del self.clock[key]
            self.stored[bucket] = dict(loaded)
        final = [bucket for bucket in listed if self.loaded.get(bucket, True)]
        if final != listed:
            self.clock[self.buckets] = final
        self.listed = set(final)
        self.dirty.clear()


class Detector:
    def __init__(self, config: DetectionConfig, aws: AwsIpRanges,
                 state: DetectorState | None = None, enrich: IpEnricher | None = None) -> None:
        self.config = config
        self.aws = aws
        self.state = state if state is not None else DetectorState()
        self.enrich = enrich
        self.counters = Counters()
        self._newly_derived: list[str] = []  # child keys whose waiting calls can go now
        self._grace_ms = config.late_arrival_grace_seconds * MS_PER_S
        self._keep_ms = config.credential_grace_seconds * MS_PER_S
        self._position: int | None = None  # the observed event's (see observe)
        # Findings forgotten with their key (expired, grace passed): still findings. Offline
        # they are printed at the end; the stream publishes them and then lets them go.
        self.retired: dict[str, dict[str, Any]] = {}

    # -- entry points ---------------------------------------------------------------------------

    def observe(self, event: Event, scope_instance: str | None = None,
                position: int | None = None) -> list[str]:
        """Fold one event in; the ids of the findings it created or changed, in order.

        ``scope_instance`` limits an instance lifecycle event to one of the instances it names
        (the stream hands each instance's copy to the partition that owns it). ``position``: the
        event's place in its partition (the stream's offset, increasing; None offline), which
        tells the same message read again after a restart from a duplicate delivery (see
        ``_counted_here``).
        """
        self._position = position
        changed: list[str] = []
        watermark = self.state.partition_clock.get(WATERMARK, 0)
        if not (isinstance(event, ApiCall) and event.is_derived_session):
            # A derived key's call comes to its instance's partition from another one, out of
            # the partition's order: event time there is told by the instance's own records.
            watermark = max(watermark, event.event_time)
        if watermark != self.state.partition_clock.get(WATERMARK):
            self.state.partition_clock[WATERMARK] = watermark
            # Calls that have waited long enough are judged before the event that ends their
            # wait, so each instance sees its events in the same order whether the job runs
            # offline over one sorted file or spread over partitions.
            self._release_due(watermark, changed)
            self._retire_due(watermark)
            self._expire_offending_ids(watermark)
            self._expire_idle(watermark)
            self._expire_releases(watermark)
        if isinstance(event, ApiCall):
            self._on_call(event, changed)
        elif isinstance(event, Issuance):
            self._on_issuance(event, changed)
        elif isinstance(event, NetworkChange):
            self._on_network_change(event, scope_instance)
        self._drain_derived(self.state.partition_clock.get(WATERMARK, 0), changed)
        return _unique(changed)

    def flush(self) -> list[str]:
        """Judge every pending call now: the end of an offline input."""
        changed: list[str] = []
        self._release_due(None, changed)
        self._drain_derived(None, changed)
        return _unique(changed)

    def render(self, finding_id: str) -> dict[str, Any]:
        aggregate = self.state.finding_aggregates.get(finding_id)
        if aggregate is None:
            aggregate = self.retired[finding_id]
        return render(aggregate, self.config, self.enrich)

    def findings(self) -> list[dict[str, Any]]:
        """Every finding held or retired, rendered, ordered by first event time then id."""
        aggregates = sorted([*self.state.finding_aggregates.values(), *self.retired.values()],
                            key=lambda a: (a["first_ms"], a["id"]))
        return [render(a, self.config, self.enrich) for a in aggregates]

    # -- issuance -------------------------------------------------------------------------------

    def track_issuance(self, issuance: Issuance) -> None:
        """Record a key as soon as its issuance is read, ahead of the ordered processing, so a
        call that overtook its issuance on the way still joins it where it stands."""
        if issuance.access_key_id not in self.state.instance_credentials:
            self.state.instance_credentials[issuance.access_key_id] = _credential(issuance)

    def _on_issuance(self, issuance: Issuance, changed: list[str]) -> None:
        self.counters.issuances += 1
        credential = _credential(issuance)
        previous = self.state.instance_credentials.get(issuance.access_key_id)
        if previous is not None and previous.get("delivery"):
            credential["delivery"] = previous["delivery"]
        if credential != previous:  # track_issuance may have written it already: one write
            self.state.instance_credentials[issuance.access_key_id] = credential
        instance_key = f"{issuance.account_id}/{issuance.instance_id}"
        instance = self._instance(instance_key)
        instance["keys"][issuance.access_key_id] = issuance.expiration
        self._purge_expired_keys(instance, issuance.event_time)
        self._note_running(instance_key, instance, issuance.event_time)
        self.state.instance_to_addresses[instance_key] = instance
        if self.state.pending_calls.get(instance_key):
            self._drain(instance_key, self.state.partition_clock.get(WATERMARK, 0), changed)

    # -- calls ----------------------------------------------------------------------------------
    #
    # Calls wait per *instance*, in event-time order: while one of an instance's calls waits for
    # its key's issuance, its later calls wait behind it, so what the instance learns (aws-address)
    # follows event time even when keys arrive out of order.

    def _on_call(self, call: ApiCall, changed: list[str]) -> None:
        if call.network is not None:
            self._on_network_change(call.network, call.instance_id)
            call = replace(call, network=None)
        if not call.access_key_id:
            self._on_console_login(call)
            return
        instance_key = _queue_key(call)
        queue = self.state.pending_calls.get(instance_key)
        watermark = self.state.partition_clock.get(WATERMARK, 0)
        # A derived key's call comes from its key's partition once the key's lineage is known
        # there, and can overtake the AssumeRole that mints it here, on a partition whose clock
        # other records have moved on: it waits from its arrival, as the AssumeRole will come.
        waits_from = (max(call.event_time, watermark) if call.is_derived_session
                      else call.event_time)
        if not queue:
            credential = self.state.instance_credentials.get(call.access_key_id)
            if credential is not None:
                self._judge(call, credential, changed)
                return
            if waits_from + self._grace_ms <= watermark:
                self._judge_unissued(call, changed)  # later than the grace: no issuance will come
                return
            queue = []
        before = _waits_from(queue[0]) + self._grace_ms if queue else None
        entry = _call_to_json(call)
        if waits_from != call.event_time:
            entry.append({"from": waits_from})
        queue.append(entry)
        queue.sort(key=_queue_order)
        self.counters.calls_pending += 1
        self.state.pending_calls[instance_key] = queue
        self._drain(instance_key, watermark, changed, before=before)

    def _drain(self, instance_key: str, watermark: int | None, changed: list[str],
               index: _DueIndex | None = None, before: int | None | bool = False) -> None:
        """Judge the instance's waiting calls from the oldest, while the oldest can be judged:
        its key is known, or its grace has passed (``watermark`` None: end of input).

        ``before`` is when the instance's oldest call was due before the caller touched its
        queue (default: the queue's head as it stands); ``index`` is left to the caller to
        save when it passes one.
        """
        own_index = index is None
        if index is None:
            index = _DueIndex(self.state.partition_clock)
        queue = self.state.pending_calls.get(instance_key) or []
        if before is False:
            before = _waits_from(queue[0]) + self._grace_ms if queue else None
        while queue:
            call = _call_from_json(queue[0])
            credential = self.state.instance_credentials.get(call.access_key_id)
            overfull = len(queue) > self.config.max_pending_per_key
            due = watermark is None or _waits_from(queue[0]) + self._grace_ms <= watermark
            if credential is None and not (due or overfull):
                break
            queue.pop(0)
            if credential is not None:
                self._judge(call, credential, changed)
            else:
                self._judge_unissued(call, changed)
        if queue:
            self.state.pending_calls[instance_key] = queue
            index.move(instance_key, before, _waits_from(queue[0]) + self._grace_ms)
        else:
            if instance_key in self.state.pending_calls:
                del self.state.pending_calls[instance_key]
            index.move(instance_key, before, None)
        if own_index:
            index.save()

    def _release_due(self, watermark: int | None, changed: list[str]) -> None:
        index = _DueIndex(self.state.partition_clock)
        for at, instance_key in index.due(watermark):
            self._drain(instance_key, watermark, changed, index, before=at)
        index.save()

    def _judge_unissued(self, call: ApiCall, changed: list[str]) -> None:
        """No issuance seen: only the delivery marker makes a session instance credentials, or
        an open console session of the instance's key makes it a console key (derived)."""
        if call.ec2_role_delivery is None or call.is_derived_session:
            credential = self._console_credential(call)
            if credential is None:
                self.counters.calls_dropped_not_instance += 1
                return
            self.state.instance_credentials[call.access_key_id] = credential
            self._judge(call, credential, changed)
            return
        credential = {
            "account": call.account_id,
            "instance": call.instance_id,
            "role": call.role_name,
            "expiration": None,
            "issuance": None,
            "delivery": call.ec2_role_delivery,
        }
        self.state.instance_credentials[call.access_key_id] = credential
        instance_key = f"{call.account_id}/{call.instance_id}"
        instance = self._instance(instance_key)
        # Expiry unknown: instance credentials live at most 6 hours (AWS's ceiling).
        instance["keys"][call.access_key_id] = call.event_time + 6 * 3600 * MS_PER_S
        self.state.instance_to_addresses[instance_key] = instance
        self._judge(call, credential, changed)

    def _judge(self, call: ApiCall, credential: dict, changed: list[str]) -> None:
        self.counters.calls_judged += 1
        if credential.get("delivery") is None and call.ec2_role_delivery is not None:
            credential = dict(credential, delivery=call.ec2_role_delivery)
            self.state.instance_credentials[call.access_key_id] = credential
        owner = credential["account"]
        instance_key = f"{owner}/{credential['instance']}"
        instance = self._instance(instance_key)
        learned = self.state.address_to_account.get("ip:" + call.source_ip)
        learned = self._holder_then(instance_key, instance, call, learned, owner)
        addresses = addresses_at(instance, call.event_time)
        known = Addresses(frozenset(addresses), learned,
                          frozenset(instance.get("proven") or ()),
                          frozenset(instance.get("endpoints") or ()),
                          frozenset(instance.get("released") or ()))
        verdict = classify(call, owner, self.config, self.aws, known)
        if verdict.reason == "vpc-endpoint-owner-unknown":
            self.counters.calls_endpoint_owner_unknown += 1
        if (call.vpc_endpoint_id and call.vpc_endpoint_account_id == owner
                and call.vpc_endpoint_id not in (instance.get("endpoints") or ())):
            # The owner's endpoint, named so by CloudTrail: learned for the calls that omit it.
            instance["endpoints"] = [*(instance.get("endpoints") or []),
                                     call.vpc_endpoint_id][-MAX_INSTANCE_ADDRESSES:]
            self.state.instance_to_addresses[instance_key] = instance
        if verdict.learn_address and call.source_ip not in addresses:
            addresses.append(call.source_ip)
            del addresses[:-MAX_INSTANCE_ADDRESSES]
            self.state.instance_to_addresses[instance_key] = instance
        if verdict.learn_address and learned == owner:
            self._hold_eips(instance_key, instance, [call.source_ip])
        # Lineage whatever the verdict: a benign chain still binds the child key.
        if call.derivation is not None:
            self._derive(call, credential, instance_key, instance)
        elif call.event_source == SIGNIN and call.event_name == "GetSigninToken":
            self._arm_console(call, credential, instance_key, instance)
        if not verdict.is_finding:
            return
        watermark = self.state.partition_clock.get(WATERMARK, call.event_time)
        aggregate = new_aggregate(call, credential, verdict, addresses, watermark)
        existing = self.state.finding_aggregates.get(aggregate["id"])
        if call.event_id:
            # CloudTrail delivers some records twice, and a restarted worker sees again what it
            # had not committed: an offending call counts once (a cross-account call's copies,
            # one per account's trail, share one sharedEventID).
            if not self._counted_here(call, existing):
                if (self._position is not None
                        and call.dedupe_id not in self.state.offending_event_ids):
                    self._remember_offending_id(call, credential)  # its write cut off by a kill
                return
        if self._position is not None:  # written with the count, in the one aggregate value
            for counted in (aggregate, existing):
                if counted is not None:
                    counted["recent"] = [*(counted.get("recent") or []),
                                         call.dedupe_id][-RECENT_IDS_KEPT:]
        if existing is None and aggregate["id"] in self.retired:  # its key came back: one finding
            existing = self.retired.pop(aggregate["id"])
            self.state.finding_aggregates[aggregate["id"]] = existing
            if aggregate["id"] not in instance["findings"]:
                instance["findings"].append(aggregate["id"])
                self.state.instance_to_addresses[instance_key] = instance
        if existing is None:
            self.state.finding_aggregates[aggregate["id"]] = aggregate
            if aggregate["id"] not in instance["findings"]:
                instance["findings"].append(aggregate["id"])
                self.state.instance_to_addresses[instance_key] = instance
            self.counters.findings_new += 1
            changed.append(aggregate["id"])
        elif update_aggregate(existing, call, verdict):
            self.state.finding_aggregates[aggregate["id"]] = existing
            self.counters.findings_updated += 1
            changed.append(aggregate["id"])
        if call.event_id:  # after the count: an id kept says its count was kept too
            self._remember_offending_id(call, credential)

    # -- key lineage ----------------------------------------------------------------------------

    def _derive(self, call: ApiCall, parent: dict, instance_key: str, instance: dict) -> None:
        """Bind the key an AssumeRole minted to the signer's instance, with its chain."""
        derivation = call.derivation
        chain = [[call.access_key_id, call.event_id], *(parent.get("derived_from") or [])]
        if len(chain) > MAX_DERIVATION_DEPTH or derivation.child_key == call.access_key_id:
            return
        if derivation.child_key in self.state.instance_credentials:
            return  # the other account's copy of the same AssumeRole, or a redelivery
        role = derivation.role_arn.rsplit("/", 1)[-1] if derivation.role_arn else None
        self.state.instance_credentials[derivation.child_key] = {
            "account": parent["account"],
            "instance": parent["instance"],
            "role": role,
            "expiration": derivation.expiration,
            "issuance": {"event_id": call.event_id, "time": call.event_time},
            "delivery": None,
            "derived_from": chain,
        }
        expiration = derivation.expiration or call.event_time + INSTANCE_CREDENTIAL_MAX_MS
        instance["keys"][derivation.child_key] = expiration
        self.state.instance_to_addresses[instance_key] = instance
        self._newly_derived.append(derivation.child_key)

    def _drain_derived(self, watermark: int | None, changed: list[str]) -> None:
        """Judge the calls a newly derived key made before its AssumeRole was judged."""
        while self._newly_derived:
            child = self._newly_derived.pop(0)
            if self.state.pending_calls.get(f"key/{child}"):
                self._drain(f"key/{child}", watermark, changed)

    def _arm_console(self, call: ApiCall, credential: dict, instance_key: str,
                     instance: dict) -> None:
        """GetSigninToken with a tracked key: a ConsoleLogin under its session may follow."""
        if not call.instance_id:
            return  # decided: console pivots are followed from instance sessions only
        chain = [[call.access_key_id, call.event_id], *(credential.get("derived_from") or [])]
        instance.setdefault("console", {})[call.role_name] = {
            "chain": chain, "signin_ms": call.event_time, "login": None}
        self.state.instance_to_addresses[instance_key] = instance

    def _on_console_login(self, call: ApiCall) -> None:
        instance_key = f"{call.account_id}/{call.instance_id}"
        instance = self.state.instance_to_addresses.get(instance_key)
        if instance is None or call.event_source != SIGNIN:
            return
        session = (instance.get("console") or {}).get(call.role_name)
        if session is None or session["login"] is not None:
            return
        if not session["signin_ms"] <= call.event_time <= session["signin_ms"] + CONSOLE_SESSION_MS:
            return
        session["login"] = [call.event_id, call.event_time]
        self.state.instance_to_addresses[instance_key] = instance

    def _console_credential(self, call: ApiCall) -> dict | None:
        """A key the console session of an instance's key signs with: derived from that key."""
        if not call.instance_id:
            return None
        instance_key = f"{call.account_id}/{call.instance_id}"
        instance = self.state.instance_to_addresses.get(instance_key)
        session = ((instance or {}).get("console") or {}).get(call.role_name)
        if session is None or session["login"] is None:
            return None
        login_id, login_ms = session["login"]
        if not login_ms <= call.event_time <= login_ms + CONSOLE_SESSION_MS:
            return None
        instance["keys"][call.access_key_id] = login_ms + CONSOLE_SESSION_MS
        self.state.instance_to_addresses[instance_key] = instance
        # The chain names the key that asked for the sign-in token, with that event's id.
        return {"account": call.account_id, "instance": call.instance_id,
                "role": call.role_name, "expiration": login_ms + CONSOLE_SESSION_MS,
                "issuance": {"event_id": login_id, "time": login_ms},
                "delivery": None, "derived_from": session["chain"]}

    # -- network changes ------------------------------------------------------------------------

    def _on_network_change(self, change: NetworkChange, scope_instance: str | None) -> None:
        self.counters.network_changes += 1
        network = self.state.address_to_account
        account = change.account_id
        if change.event_name in ("ReleaseAddress", "DeleteNatGateway"):
            self._on_addresses_given_back(change)
            return
        if change.event_name == "CreateNatGateway":
            self._record_gateway(change)
        if change.event_name in ("AllocateAddress", "AssociateAddress", "CreateNatGateway"):
            for allocation, ip in change.allocations:
                if not self._released_since(ip, account, change.event_time):
                    network[f"alloc:{account}/{allocation}"] = ip
            ips = list(change.public_ips)
            for allocation in change.allocation_ids:
                ip = self._allocated_ip(account, allocation)
                if ip:
                    ips.append(ip)
            for ip in ips:
                # Read again after its release (a restart re-reads what it had not committed,
                # the release already in this table): the holding is over, the instance had it.
                if not self._released_since(ip, account, change.event_time):
                    network["ip:" + ip] = account
            if change.event_name == "AssociateAddress":
                # An elastic IP associated with a tracked instance is proven its own.
                for instance_id in change.instance_ids:
                    instance_key = f"{account}/{instance_id}"
                    instance = self.state.instance_to_addresses.get(instance_key)
                    if instance is not None and ips:
                        self._prove(instance_key, instance, ips)
                        self._hold_eips(instance_key, instance, ips)
            return
        if change.event_name == "RunInstances":
            for instance_id, addresses in change.proven:
                if scope_instance is not None and instance_id != scope_instance:
                    continue
                instance_key = f"{account}/{instance_id}"
                if addresses:
                    self._prove(instance_key, self._instance(instance_key), list(addresses))
            for interface, instance_id in change.interfaces:
                if scope_instance is None or instance_id == scope_instance:
                    network[f"eni:{account}/{interface}"] = instance_id
            return
        if change.event_name in ASSIGN_EVENTS:
            # Sent to every partition: the one that saw the interface launched proves it.
            for interface, addresses in change.proven:
                instance_id = network.get(f"eni:{account}/{interface}")
                instance_key = f"{account}/{instance_id}"
                instance = self.state.instance_to_addresses.get(instance_key)
                if instance_id is not None and instance is not None:
                    self._prove(instance_key, instance, list(addresses))
            return
        for instance_id in change.instance_ids:
            if scope_instance is not None and instance_id != scope_instance:
                continue
            instance_key = f"{account}/{instance_id}"
            instance = self.state.instance_to_addresses.get(instance_key)
            if instance is None:
                continue
            # A stopped or started instance gets a new public address; relearn it. What it
            # had stays for calls from before this moment (see addresses_at).
            resets = [*(instance.get("resets") or []), [change.event_time, instance["addresses"]]]
            instance["resets"] = resets[-MAX_RESETS_KEPT:]
            instance["addresses"] = []
            self._note_lifecycle(instance_key, instance, change)
            self.state.instance_to_addresses[instance_key] = instance
            if change.event_name == "TerminateInstances":
                self._schedule_retirement(instance_key, instance)

    def _prove(self, instance_key: str, instance: dict, addresses: list[str]) -> None:
        proven = sorted(set(instance.get("proven") or []) | set(addresses))
        instance["proven"] = proven[-MAX_INSTANCE_ADDRESSES:]
        self.state.instance_to_addresses[instance_key] = instance

    # -- addresses given back -------------------------------------------------------------------
    #
    # What an account holds is what it has allocated and not released: ReleaseAddress (by
    # allocation id; by address in EC2-Classic) forgets an elastic IP, DisassociateAddress keeps
    # it the account's. Deleting a NAT gateway does not release the elastic IPs its request
    # named (AWS keeps them allocated); only addresses the gateway got without naming go with it.

    def _record_gateway(self, change: NetworkChange) -> None:
        if not change.gateway_allocations:
            return
        for gateway in change.nat_gateway_ids:
            self.state.address_to_account[f"nat:{change.account_id}/{gateway}"] = list(
                change.gateway_allocations)

    def _on_addresses_given_back(self, change: NetworkChange) -> None:
        network = self.state.address_to_account
        ips = list(change.public_ips) if change.event_name == "ReleaseAddress" else []
        allocations = list(change.allocation_ids) if change.event_name == "ReleaseAddress" else []
        gateways = change.nat_gateway_ids if change.event_name == "DeleteNatGateway" else ()
        account = change.account_id
        for gateway in gateways:
            allocations += (network.get(f"nat:{account}/{gateway}")
                            or network.get("nat:" + gateway) or [])
        # Each fact written before what it replaces is deleted, and a release read again finds
        # its addresses still: after a worker's kill this table can hold any prefix of these
        # writes, and the release, re-read, completes it.
        log = _DueLog(self.state.partition_clock, RELEASED_LOG, RELEASED_SPAN)
        freed = []
        for allocation in allocations:
            ip = self._allocated_ip(account, allocation)
            if ip is not None:
                freed.append((allocation, ip))
                ips.append(ip)
        for ip in ips:
            # Only the account's own: another account may hold the address since (two trails'
            # records need not come in the order they happened).
            if network.get("ip:" + ip) == change.account_id:
                network["released:" + ip] = [change.account_id, change.event_time]
                log.append("released:" + ip, change.event_time + RELEASED_KEPT_MS)
                del network["ip:" + ip]
        for allocation, ip in freed:
            held = f"alloc:{account}/{allocation}"
            earlier = "alloc:" + allocation  # an earlier version's key, if it names this ip
            if held in network or network.get(earlier) == ip:
                # Kept as released, as long as the release: an association read again after
                # it (a restart's re-read) still finds the address it names.
                released = f"{RELEASED_ALLOCATION}{account}/{allocation}"
                network[released] = [ip, change.event_time]
                log.append(released, change.event_time + RELEASED_KEPT_MS)
                if held in network:
                    del network[held]
                if network.get(earlier) == ip:
                    del network[earlier]
        for gateway in gateways:
            for key in (f"nat:{account}/{gateway}", "nat:" + gateway):
                if key in network:
                    del network[key]

    def _allocated_ip(self, account: str, allocation: str) -> str | None:
        """The address of an account's allocation, held or released."""
        network = self.state.address_to_account
        ip = network.get(f"alloc:{account}/{allocation}")
        if ip is None:
            released = network.get(f"{RELEASED_ALLOCATION}{account}/{allocation}")
            ip = released[0] if released is not None else None
        if ip is None:  # an earlier version's keys: the account's if its address is
            ip = network.get("alloc:" + allocation)
            if ip is None:
                released = network.get(RELEASED_ALLOCATION + allocation)
                ip = released[0] if released is not None else None
            if ip is not None and not self._account_had(account, ip):
                ip = None
        return ip

    def _account_had(self, account: str, ip: str) -> bool:
        network = self.state.address_to_account
        released = network.get("released:" + ip)
        return network.get("ip:" + ip) == account or (released is not None
                                                      and released[0] == account)

    def _released_since(self, ip: str, account: str, event_time: int) -> bool:
        """Whether ``account`` released ``ip`` after ``event_time``: a change from before the
        release, read after it, names a holding that is over."""
        released = self.state.address_to_account.get("released:" + ip)
        return released is not None and released[0] == account and event_time < released[1]

    def _expire_releases(self, watermark: int) -> None:
        log = _DueLog(self.state.partition_clock, RELEASED_LOG, RELEASED_SPAN)
        network = self.state.address_to_account
        for key, at in log.due(watermark):
            released = network.get(key)  # an address's or an allocation's: [_, when]
            if released is not None and released[1] + RELEASED_KEPT_MS == at:
                del network[key]
        log.done()

    def _hold_eips(self, instance_key: str, instance: dict, ips: list[str]) -> None:
        """Addresses the instance has because its account holds them (an elastic IP associated
        with it, a NAT gateway's): its own only while the account holds them."""
        eips = instance.get("eips") or []
        released = instance.get("released") or []
        if all(ip in eips for ip in ips) and not any(ip in released for ip in ips):
            return
        instance["eips"] = [*eips, *(ip for ip in ips if ip not in eips)][-MAX_INSTANCE_ADDRESSES:]
        if released:
            instance["released"] = [ip for ip in released if ip not in ips]
        self.state.instance_to_addresses[instance_key] = instance

    def _holder_then(self, instance_key: str, instance: dict, call: ApiCall,
                     learned: str | None, owner: str) -> str | None:
        """Who held the call's address when it was made. A call from an address the instance
        had from its account, which the account no longer holds (released, or allocated to
        another account since), made before the release (read again: a redelivery, a restart)
        was the account's; made after, the address is no longer the instance's, not even to
        learn first (its next holder is a stranger)."""
        ip = call.source_ip
        if learned == owner:
            return learned
        # Asked whatever the instance holds: after a worker's kill the instance's table can
        # lack what the address table's release says it had (each table keeps its own prefix).
        released = self.state.address_to_account.get("released:" + ip)
        if released is not None and call.event_time < released[1]:
            return released[0]
        if ip not in (instance.get("eips") or ()):
            return learned  # known released already
        instance["eips"] = [held for held in instance["eips"] if held != ip]
        for _, before in instance.get("resets") or ():
            if ip in before:
                before.remove(ip)
        if ip in instance["addresses"]:
            instance["addresses"].remove(ip)
        if ip in (instance.get("proven") or ()):
            instance["proven"] = [proven for proven in instance["proven"] if proven != ip]
        released = [r for r in instance.get("released") or [] if r != ip]
        instance["released"] = [*released, ip][-MAX_INSTANCE_ADDRESSES:]
        self.state.instance_to_addresses[instance_key] = instance
        return learned

    # -- state upkeep ---------------------------------------------------------------------------

    def _instance(self, instance_key: str) -> dict:
        instance = self.state.instance_to_addresses.get(instance_key)
        if instance is None:
            instance = {"addresses": [], "keys": {}, "findings": []}
            # Looked at again once the grace has passed: kept while it has live keys.
            self._look_again(instance_key, instance,
                             self.state.partition_clock.get(WATERMARK, 0) + self._keep_ms)
        return instance

    def _purge_expired_keys(self, instance: dict, now: int) -> None:
        for key, expiration in list(instance["keys"].items()):
            if expiration is not None and expiration + self._keep_ms < now:
                del instance["keys"][key]
                self._forget_key(key, instance)

    def _forget_key(self, access_key: str, instance: dict) -> None:
        if access_key in self.state.instance_credentials:
            del self.state.instance_credentials[access_key]
        for fid in list(instance["findings"]):
            aggregate = self.state.finding_aggregates.get(fid)
            if aggregate is None or aggregate["access_key"] == access_key:
                instance["findings"].remove(fid)
                if aggregate is not None:
                    self.retired[fid] = aggregate
                    del self.state.finding_aggregates[fid]

    def _schedule_retirement(self, instance_key: str, instance: dict) -> None:
        """A terminated instance's keys still work until they expire: forget them after that."""
        expirations = [e for e in instance["keys"].values() if e is not None]
        if not expirations:
            return
        at = max(expirations) + self._keep_ms
        index = self._retiring_index()
        index.move(instance_key, instance.get("retire_at"), at)
        index.save()
        instance["retire_at"] = at
        self.state.instance_to_addresses[instance_key] = instance

    def _retiring_index(self) -> _DueIndex:
        return _DueIndex(self.state.partition_clock, RETIRING_BUCKETS, RETIRING_DUE,
                         RETIRING_BUCKET_MS, LEGACY_RETIRING)

    def _retire_due(self, watermark: int) -> None:
        clock = self.state.partition_clock
        if not clock.get(RETIRING_BUCKETS) and LEGACY_RETIRING not in clock:
            return
        index = self._retiring_index()
        for at, instance_key in index.due(watermark - 1):  # strictly before the watermark
            index.move(instance_key, at, None)
            instance = self.state.instance_to_addresses.get(instance_key)
            if instance is None:
                continue
            for key in list(instance["keys"]):
                self._forget_key(key, instance)
            del self.state.instance_to_addresses[instance_key]
        index.save()

    def _counted_here(self, call: ApiCall, existing: dict | None) -> bool:
        """Whether an offending call is to be counted now: not if its id is held. A worker
        killed -9 keeps a prefix of the one changelog, which may end between a count and its
        id: the finding's aggregate names, with its count, its last ids counted."""
        seen = self.state.offending_event_ids.get(call.dedupe_id)
        if seen is not None or self._position is None:
            # Offline its id decides. In the stream too, as the core's tables share one
            # changelog (streams/app/state.py) and the id is written after its count: a kill
            # that kept the id kept the count.
            return seen is None
        # Not held: counted all the same if the kill cut off its id, the write after its count
        # (only the last call counted can have lost it; the aggregate's last ids name it).
        return call.dedupe_id not in ((existing or {}).get("recent") or ())

    def _remember_offending_id(self, call: ApiCall, credential: dict) -> None:
        expiry = credential.get("expiration") or call.event_time + INSTANCE_CREDENTIAL_MAX_MS
        forget_at = max(expiry, call.event_time) + OFFENDING_ID_KEPT_MS
        # Its expiry log first: an id kept by a kill is one that will be forgotten.
        span = self.state.partition_clock.get(SEEN_SPAN) or [0, 0, 0]
        key = f"{SEEN_LOG}{span[1]}"
        chunk = self.state.partition_clock.get(key) or []
        chunk.append([call.dedupe_id, forget_at])
        self.state.partition_clock[key] = chunk
        if len(chunk) >= SEEN_CHUNK:  # full: the next id starts a new chunk
            self.state.partition_clock[SEEN_SPAN] = [span[0], span[1] + 1, span[2]]
        elif SEEN_SPAN not in self.state.partition_clock:
            self.state.partition_clock[SEEN_SPAN] = span
        self.state.offending_event_ids[call.dedupe_id] = (
            forget_at if self._position is None else [forget_at, self._position])

    def _expire_offending_ids(self, watermark: int) -> None:
        """Forget offending ids past their time, a chunk at a time from the oldest; a chunk goes
        when all its ids are due, so no id is forgotten early. The span's third value is a
        lower bound of when the oldest chunk is due, so most events read only the span."""
        span = self.state.partition_clock.get(SEEN_SPAN)
        if span is None or watermark <= span[2]:
            return
        oldest, next_chunk, not_before = span
        while oldest <= next_chunk:
            key = f"{SEEN_LOG}{oldest}"
            chunk = self.state.partition_clock.get(key)
            if not chunk:
                break
            due = max(at for _, at in chunk)
            if due >= watermark:
                not_before = due
                break
            for event_id, _ in chunk:
                if event_id in self.state.offending_event_ids:
                    del self.state.offending_event_ids[event_id]
            del self.state.partition_clock[key]
            oldest += 1
            next_chunk = max(next_chunk, oldest)
        if [oldest, next_chunk, not_before] != span:
            self.state.partition_clock[SEEN_SPAN] = [oldest, next_chunk, not_before]

    # -- instances that vanish ------------------------------------------------------------------

    def _look_again(self, instance_key: str, instance: dict, at: int) -> None:
        """Schedule a look at the instance from ``at`` on (the caller writes the instance)."""
        _DueLog(self.state.partition_clock, IDLE_LOG, IDLE_SPAN, IDLE_CHUNK).append(
            instance_key, at)
        instance["idle_at"] = at

    def _note_running(self, instance_key: str, instance: dict, now: int) -> None:
        """An issuance or a start: the instance runs, and is looked at again (state written
        before this was released has no look scheduled: it gets one now)."""
        instance.pop("stopped", None)
        if "idle_at" not in instance:
            self._look_again(instance_key, instance, now + self._keep_ms)

    def _note_lifecycle(self, instance_key: str, instance: dict, change: NetworkChange) -> None:
        if change.event_name == "StopInstances":
            instance["stopped"] = True  # kept while stopped: its proven addresses come back
        elif change.event_name == "StartInstances":
            self._note_running(instance_key, instance, change.event_time)

    def _active_until(self, instance: dict) -> int:
        """When the instance last had a key that works, or last stopped or started."""
        latest = [t for t, _ in instance.get("resets") or ()]
        for key, expiration in instance["keys"].items():
            if expiration is None:  # unknown: at most 6 hours from its issuance
                issued = (self.state.instance_credentials.get(key) or {}).get("issuance") or {}
                expiration = issued.get("time", 0) + INSTANCE_CREDENTIAL_MAX_MS
            latest.append(expiration)
        return max(latest, default=0)

    def _expire_idle(self, watermark: int) -> None:
        """Forget the instances idle past the grace: their keys expired past it, nothing
        happened to them since. A terminated one is the retiring index's; a stopped one is
        kept until it starts, its expired keys forgotten."""
        log = _DueLog(self.state.partition_clock, IDLE_LOG, IDLE_SPAN, IDLE_CHUNK)
        for instance_key, at in log.due(watermark):
            instance = self.state.instance_to_addresses.get(instance_key)
            if instance is None or instance.get("idle_at") != at:
                continue  # forgotten already, or looked at later: this entry is stale
            del instance["idle_at"]
            if "retire_at" not in instance:
                if instance.get("stopped"):
                    self._purge_expired_keys(instance, watermark)
                until = self._active_until(instance) + self._keep_ms
                if until >= watermark:
                    self._look_again(instance_key, instance, until)
                elif not instance.get("stopped"):
                    for key in list(instance["keys"]):
                        self._forget_key(key, instance)
                    del self.state.instance_to_addresses[instance_key]
                    continue
            self.state.instance_to_addresses[instance_key] = instance
        log.done()


class _DueLog:
    """Keys to look at again from a time on, in the order they were written, in chunks: each
    entry writes one small chunk, and a chunk is read once every entry in it is due, so an
    entry may be read late (by hours at most: a chunk's due times are within ``chunk_ms`` of
    its first), never early. The span is [oldest chunk, newest chunk, a lower bound of when
    the oldest is due], so most events read only the span."""

    def __init__(self, clock: MutableMapping[str, Any], prefix: str, span_key: str,
                 chunk_size: int = SEEN_CHUNK, chunk_ms: int = IDLE_CHUNK_MS) -> None:
        self.clock = clock
        self.prefix = prefix
        self.span_key = span_key
        self.chunk_size = chunk_size
        self.chunk_ms = chunk_ms
        self._read: tuple[int, int, int] | None = None  # (oldest, after, not before) of due

    def append(self, key: str, at: int) -> None:
        span = self.clock.get(self.span_key) or [0, 0, 0]
        newest = span[1]
        chunk = self.clock.get(f"{self.prefix}{newest}") or []
        if chunk and (len(chunk) >= self.chunk_size or at > chunk[0][1] + self.chunk_ms):
            newest, chunk = newest + 1, []  # full, or due too long after it: a new chunk
        chunk.append([key, at])
        self.clock[f"{self.prefix}{newest}"] = chunk
        if newest != span[1] or self.span_key not in self.clock:
            self.clock[self.span_key] = [span[0], newest, span[2]]

    def due(self, watermark: int) -> list[tuple[str, int]]:
        """The entries of the chunks wholly due before ``watermark``, oldest first; ``done``
        removes them once the caller has acted on them (a kill before that leaves them to be
        read again: acting on an entry twice is the callers' to allow). An entry appended
        meanwhile goes to a chunk after them."""
        self._read = None
        span = self.clock.get(self.span_key)
        if span is None or watermark <= span[2]:
            return []
        oldest, newest, not_before = span
        entries: list[tuple[str, int]] = []
        chunk = oldest
        while chunk <= newest:
            held = self.clock.get(f"{self.prefix}{chunk}")
            if not held:
                break
            due = max(at for _, at in held)
            if due >= watermark:
                not_before = due
                break
            entries += [(key, at) for key, at in held]
            chunk += 1
        if chunk > oldest and chunk > newest:  # every chunk due: appends start the next one
            self.clock[self.span_key] = [oldest, chunk, span[2]]
        self._read = (oldest, chunk, not_before)
        return entries

    def done(self) -> None:
        """Remove the chunks ``due`` read (each after its entries were acted on)."""
        if self._read is None:
            return
        oldest, after, not_before = self._read
        self._read = None
        for chunk in range(oldest, after):
            del self.clock[f"{self.prefix}{chunk}"]
        span = self.clock.get(self.span_key)
        if span is not None and [after, max(span[1], after), not_before] != span:
            self.clock[self.span_key] = [after, max(span[1], after), not_before]


def _credential(issuance: Issuance) -> dict[str, Any]:
    return {
        "account": issuance.account_id,
        "instance": issuance.instance_id,
        "role": issuance.role_arn.rsplit("/", 1)[-1] if issuance.role_arn else None,
        "expiration": issuance.expiration,
        "issuance": {"event_id": issuance.event_id, "time": issuance.event_time},
        "delivery": None,
    }


def _queue_key(call: ApiCall) -> str:
    """Calls wait per instance; a derived session's, whose instance is not yet known, per key."""
    if call.is_derived_session:
        return f"key/{call.access_key_id}"
    return f"{call.account_id}/{call.instance_id}"


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def addresses_at(instance: dict, event_time: int) -> list[str]:
    """The learned addresses of ``instance`` at ``event_time`` (the list itself, to learn into):
    those before the first reset after that time, else the current ones."""
    for reset_time, before in instance.get("resets") or ():
        if event_time < reset_time:
            return before
    return instance["addresses"]
