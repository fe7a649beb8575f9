"""The worker's copy of respond's notes (streams/app/responses.py), fed messages as the
responses topic holds them: the latest note per finding id, what changed, tombstones."""

from __future__ import annotations

import json

from streams.app.responses import ResponseNotes
from streams.kafka.settings import load_kafka_settings


def noted(outcome: str) -> bytes:
    note = {"action": "revoke-sessions", "role": "web-role", "account": "111122223333",
            "policyName": "AWSRevokeOlderSessions", "tokenIssuedBefore": "2026-12-03T06:00:00Z",
            "applied": outcome == "applied", "outcome": outcome, "reason": "…"}
    return json.dumps({"id": "f1", "service": {"additionalInfo": {"response": note}}}).encode()


def notes() -> ResponseNotes:
    return ResponseNotes(load_kafka_settings({"topic_findings": "sec-findings"}, environ={}))


def test_the_topic_is_beside_the_findings():
    assert notes().topic == "sec-findings-responses"


def test_the_latest_note_per_id_and_what_changed():
    n = notes()
    n.take(b"f1", noted("dry-run"))
    n.take(b"f1", noted("applied"))
    assert n.note("f1")["outcome"] == "applied"
    assert n.take_changed() == ["f1"] and n.take_changed() == []
    n.take(b"f1", noted("applied"))  # the same note again (a re-read): nothing to re-emit
    assert n.take_changed() == []
    n.take(b"f1", None)  # a tombstone withdraws it
    assert n.note("f1") is None


def test_a_message_without_a_note_is_ignored_not_fatal():
    n = notes()
    n.take(b"f2", b"not json")
    n.take(b"f2", json.dumps({"id": "f2", "service": {}}).encode())
    n.take(None, noted("applied"))
    assert n.note("f2") is None and n.take_changed() == [] and n.unreadable == 3
