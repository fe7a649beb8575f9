"""Backtest: findings scored against labels per (access key, finding type), time to detect (event
time from the first offending event to the watermark when raised), and two configs compared.
Archived findings are not raised unless asked; a ratio with nothing to divide by is 1.0."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from streams.core.finding_types import FINDING_TYPES, SHORT_TYPES
from streams.core.records import ApiCall, Event
from streams.core.times import format_time
from streams.errors import UserError
from streams.offline.run import Run

METRIC_KEYS = ("precision", "recall", "f1", "true_positives", "false_positives",
               "false_negatives")

Pair = tuple[str, str]  # (access key id, full finding type)


def short_type(finding_type: str) -> str:
    return finding_type.rsplit(".", 1)[-1]


# -- labels --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Labels:
    pairs: frozenset[Pair]
    rows: int  # data rows read, duplicates included
    duplicates: int


def parse_labels(text: str, name: str = "labels") -> Labels:
    """``accessKeyId,type`` CSV (further columns ignored; ``#`` rows are comments).

    The type is the full GuardDuty type or its last part (``OutsideAWS``, ``InsideAWS``).
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header: list[str] | None = None
    pairs: set[Pair] = set()
    rows = duplicates = 0
    for row in reader:
        line = reader.line_num
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if header is None:
            header = cells
            missing = [c for c in ("accessKeyId", "type") if c not in header]
            if missing:
                raise UserError(f"{name}:{line}: the header must name the columns accessKeyId,"
                                f"type; got {','.join(header)!r}")
            key_at, type_at = header.index("accessKeyId"), header.index("type")
            continue
        if len(cells) <= max(key_at, type_at):
            raise UserError(f"{name}:{line}: expected the columns {','.join(header)}, got "
                            f"{len(cells)} value(s)")
        key, kind = cells[key_at], cells[type_at]
        if not key:
            raise UserError(f"{name}:{line}: accessKeyId is empty")
        full = kind if kind in FINDING_TYPES else SHORT_TYPES.get(kind)
        if full is None:
            lowered = {k.lower(): v for k, v in SHORT_TYPES.items()}
            full = lowered.get(kind.lower())
        if full is None:
            raise UserError(f"{name}:{line}: type {kind!r} is not one of "
                            f"{', '.join(SHORT_TYPES)} (or the full finding type)")
        rows += 1
        if (key, full) in pairs:
            duplicates += 1
        pairs.add((key, full))
    if header is None:
        raise UserError(f"{name}: empty; expected a header accessKeyId,type and one row per "
                        "finding that should be raised")
    return Labels(frozenset(pairs), rows, duplicates)


def read_labels(path: str) -> Labels:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except OSError as exc:
        raise UserError(f"--labels {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"--labels {path}: not UTF-8 text") from None
    return parse_labels(text, path)


# -- scoring -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """The first event behind a verdict: a finding's first offending call, or for a missed
    label the first call signed with its key (None when there is none in the input)."""

    event_id: str
    time_ms: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "eventTime": format_time(self.time_ms),
                "detail": self.detail}


@dataclass
class Outcome:
    access_key: str
    finding_type: str
    status: str  # "TP", "FP" or "FN"
    finding_ids: list[str]
    evidence: Evidence | None
    account: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"accessKeyId": self.access_key, "type": self.finding_type,
                "status": self.status, "findingIds": self.finding_ids,
                "account": self.account,
                "firstEvidence": self.evidence.as_dict() if self.evidence else None}


@dataclass(frozen=True)
class Detection:
    """One finding's time to detect, in event time."""

    finding_id: str
    access_key: str
    finding_type: str
    status: str  # TP, FP, or "archived" when not scored
    first_ms: int
    detected_ms: int

    @property
    def seconds(self) -> float:
        return (self.detected_ms - self.first_ms) / 1000

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.finding_id, "accessKeyId": self.access_key,
                "type": self.finding_type, "status": self.status,
                "firstEventTime": format_time(self.first_ms),
                "detectedAt": format_time(self.detected_ms), "seconds": self.seconds}


@dataclass
class Score:
    true_positives: list[Outcome]
    false_positives: list[Outcome]
    false_negatives: list[Outcome]
    detections: list[Detection]
    archived: list[dict[str, Any]]  # findings not scored because archived
    findings: list[dict[str, Any]]  # every finding of the run, archived ones included

    @property
    def precision(self) -> float:
        return ratio(len(self.true_positives),
                     len(self.true_positives) + len(self.false_positives))

    @property
    def recall(self) -> float:
        return ratio(len(self.true_positives),
                     len(self.true_positives) + len(self.false_negatives))

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def metrics(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "true_positives": len(self.true_positives),
                "false_positives": len(self.false_positives),
                "false_negatives": len(self.false_negatives)}

    def time_to_detect(self) -> dict[str, float | None]:
        """Median and max seconds over the true positives' findings (None without any)."""
        seconds = [d.seconds for d in self.detections if d.status == "TP"]
        if not seconds:
            return {"median": None, "max": None}
        return {"median": float(statistics.median(seconds)), "max": max(seconds)}


def ratio(hits: int, total: int) -> float:
    return 1.0 if total == 0 else hits / total


def pair_of(finding: dict[str, Any]) -> Pair:
    return (finding["resource"]["accessKeyDetails"]["accessKeyId"], finding["type"])


def remote_of(finding: dict[str, Any]) -> str:
    action = finding["service"]["action"]["awsApiCallAction"]
    if action["remoteAccountDetails"]:
        return action["remoteAccountDetails"]["accountId"]
    ip = action["remoteIpDetails"]
    return ip["ipAddressV4"] or ip["ipAddressV6"] or ""


def is_scored(finding: dict[str, Any], include_archived: bool) -> bool:
    return include_archived or not finding["service"]["archived"]


def first_calls(events: Iterable[Event], keys: set[str]) -> dict[str, ApiCall]:
    """The first call (in event order) signed with each of the keys."""
    found: dict[str, ApiCall] = {}
    for event in events:
        if isinstance(event, ApiCall) and event.access_key_id in keys \
                and event.access_key_id not in found:
            found[event.access_key_id] = event
            if len(found) == len(keys):
                break
    return found


class FirstCalls:
    """The first call signed with each of some keys, noted as the events go by (one pass: the
    events are not kept), for ``score``'s evidence of a missed finding."""

    def __init__(self, keys: set[str]) -> None:
        self.keys = keys
        self.calls: list[ApiCall] = []
        self._seen: set[str] = set()

    def noting(self, events: Iterable[Event]) -> Iterator[Event]:
        for event in events:
            if (isinstance(event, ApiCall) and event.access_key_id in self.keys
                    and event.access_key_id not in self._seen):
                self._seen.add(event.access_key_id)
                self.calls.append(event)
            yield event


def score(run: Run, labels: Labels, events: Iterable[Event],
          include_archived: bool = False) -> Score:
    scored: dict[Pair, list[dict[str, Any]]] = {}
    archived = []
    for finding in run.findings:
        if is_scored(finding, include_archived):
            scored.setdefault(pair_of(finding), []).append(finding)
        else:
            archived.append(finding)
    tps, fps, fns = [], [], []
    for pair in sorted(scored):
        findings = scored[pair]
        # The pair's earliest offending event: a finding's first_events are (time, id), sorted.
        time_ms, event_id, finding = min(
            ((*run.aggregate(f["id"])["first_events"][0], f) for f in findings),
            key=lambda item: (item[0], item[1]))
        aggregate = run.aggregate(finding["id"])
        evidence = Evidence(event_id, time_ms,
                            f"{aggregate['api']} from {aggregate['remote_ip']}")
        outcome = Outcome(pair[0], pair[1], "TP" if pair in labels.pairs else "FP",
                          [f["id"] for f in findings], evidence, finding["accountId"])
        (tps if outcome.status == "TP" else fps).append(outcome)
    missed = sorted(labels.pairs - scored.keys())
    calls = first_calls(events, {key for key, _ in missed})
    for key, kind in missed:
        call = calls.get(key)
        evidence = None
        if call is not None:
            evidence = Evidence(call.event_id, call.event_time,
                                f"{call.event_name} from {call.source_ip}")
        fns.append(Outcome(key, kind, "FN", [], evidence, call.account_id if call else None))
    detections = []
    for finding in run.findings:
        aggregate = run.aggregate(finding["id"])
        if not is_scored(finding, include_archived):
            status = "archived"
        else:
            status = "TP" if pair_of(finding) in labels.pairs else "FP"
        detections.append(Detection(finding["id"], aggregate["access_key"], finding["type"],
                                    status, aggregate["first_ms"], aggregate["detected_at"]))
    def when(o: Outcome) -> tuple:
        at = o.evidence.time_ms if o.evidence is not None else float("inf")
        return (at, o.access_key, o.finding_type)

    return Score(sorted(tps, key=when), sorted(fps, key=when), sorted(fns, key=when),
                 detections, archived, run.findings)


# -- two configs compared ------------------------------------------------------------------------

@dataclass
class Comparison:
    baseline: Score
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline.metrics(), "added": self.added,
                "removed": self.removed}


Identity = tuple[str, str, str]  # (type, access key, remote account or address)


def identity_of(finding: dict[str, Any]) -> Identity:
    key, kind = pair_of(finding)
    return (kind, key, remote_of(finding))


def compare(baseline: Score, current: Score, labels: Labels,
            include_archived: bool = False) -> Comparison:
    """Findings the current config raises that the baseline does not (added), and back."""

    def raised(s: Score) -> dict[Identity, dict[str, Any]]:
        return {identity_of(f): f for f in s.findings if is_scored(f, include_archived)}

    def every(s: Score) -> dict[Identity, dict[str, Any]]:
        return {identity_of(f): f for f in s.findings}

    before, after = raised(baseline), raised(current)

    def entry(identity: Identity, finding: dict[str, Any], other: dict[str, Any] | None,
              ) -> dict[str, Any]:
        kind, key, remote = identity
        suppressed = other["evidence"]["suppressedBy"] if other is not None else None
        return {"type": kind, "accessKeyId": key, "remote": remote, "id": finding["id"],
                "labelled": (key, kind) in labels.pairs,
                "archivedInOther": suppressed}

    added = [entry(i, after[i], every(baseline).get(i)) for i in sorted(after.keys() - before)]
    removed = [entry(i, before[i], every(current).get(i)) for i in sorted(before.keys() - after)]
    return Comparison(baseline, added, removed)


# -- text ----------------------------------------------------------------------------------------

def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == int(value):
        return f"{int(value)} s"
    return f"{value:.1f} s"


def describe_evidence(outcome: Outcome) -> str:
    if outcome.evidence is None:
        return "no call with this key in the input"
    e = outcome.evidence
    return f"{format_time(e.time_ms)} event {e.event_id} ({e.detail})"


def text_report(result: Score, labels: Labels, comparison: Comparison | None = None,
                source: str = "", baseline_name: str = "") -> str:
    m = result.metrics()
    lines = []
    if source:
        lines.append(f"backtest of {source}")
    lines.append(f"{labels.rows - labels.duplicates} labels, "
                 f"{len(result.findings) - len(result.archived)} findings raised"
                 + (f" ({len(result.archived)} archived, not scored)" if result.archived else ""))
    lines.append(f"precision {fmt(m['precision'])}  recall {fmt(m['recall'])}  "
                 f"F1 {fmt(m['f1'])}")
    lines.append(f"true positives {m['true_positives']}  false positives "
                 f"{m['false_positives']}  false negatives {m['false_negatives']}")
    for title, outcomes, what in (("false positives (raised, not labelled)",
                                   result.false_positives, "first evidence"),
                                  ("false negatives (labelled, not raised)",
                                   result.false_negatives, "first call")):
        if outcomes:
            lines.append("")
            lines.append(f"{title}:")
            for o in outcomes:
                said = f"{what} " if o.evidence is not None else ""
                lines.append(f"  {short_type(o.finding_type)} {o.access_key}: {said}"
                             f"{describe_evidence(o)}")
    ttd = result.time_to_detect()
    lines.append("")
    lines.append(f"time to detect (event time, true positives): median "
                 f"{fmt_seconds(ttd['median'])}, max {fmt_seconds(ttd['max'])}")
    lines.append("  from the first offending call's eventTime to the event-time watermark when "
                 "the finding was raised: the wait for late issuances; CloudTrail's delivery "
                 "delay and the stream's own are in detectedAt of streamed findings")
    for d in result.detections:
        lines.append(f"  {d.status:<8} {short_type(d.finding_type)} {d.access_key} "
                     f"{format_time(d.first_ms)} -> {format_time(d.detected_ms)} "
                     f"{fmt_seconds(d.seconds)}")
    if comparison is not None:
        b = comparison.baseline.metrics()
        lines.append("")
        name = f" {baseline_name}" if baseline_name else ""
        lines.append(f"compared with the baseline config{name}: {len(comparison.added)} "
                     f"finding(s) added, {len(comparison.removed)} removed")
        lines.append(f"  baseline: precision {fmt(b['precision'])}  recall {fmt(b['recall'])}  "
                     f"F1 {fmt(b['f1'])}  (TP {b['true_positives']}, FP {b['false_positives']},"
                     f" FN {b['false_negatives']})")
        for sign, entries in (("+", comparison.added), ("-", comparison.removed)):
            for e in entries:
                lines.append(f"  {sign} {short_type(e['type'])} {e['accessKeyId']} from "
                             f"{e['remote']}: {change_note(sign, e)}")
    return "\n".join(lines) + "\n"


def change_note(sign: str, entry: dict[str, Any]) -> str:
    """What a change means for the scores: the point of comparing configs."""
    if sign == "+":
        note = "labelled (a hit gained)" if entry["labelled"] else "not labelled (a new false " \
                                                                   "positive)"
    else:
        note = "labelled (a hit lost)" if entry["labelled"] else "not labelled (a false " \
                                                                 "positive gone)"
    if entry["archivedInOther"]:
        other = "baseline" if sign == "+" else "this config"
        note += f"; archived in the {other} by {entry['archivedInOther']}"
    return note
