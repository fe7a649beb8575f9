"""A seeded few thousand hostile inputs (tests/fuzzing.py): nothing but MalformedRecord may leave
``detect``'s path or the worker's record path. ``make fuzz`` runs a million."""

from __future__ import annotations

import sys
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fuzzing  # noqa: E402


def test_no_exception_escapes_detect_or_the_worker():
    totals = fuzzing.run(2500, seed=11, hang_seconds=None)
    assert totals["inputs"] == 2500
    assert totals["crashes"] == 0, "\n".join(totals["first_crashes"])


def test_the_inputs_are_hostile_and_the_same_for_a_seed():
    first = [payload for payload, _ in islice(fuzzing.inputs(5), 300)]
    again = [payload for payload, _ in islice(fuzzing.inputs(5), 300)]
    assert first == again
    joined = b"".join(first)
    for shape in (b"\\ud800", b"\x1f\x8b", b"\xef\xbb\xbf", b'{"x":{"x":', b"::ffff:",
                  b"9999-12-31", b'{"Records": ['):
        assert shape in joined, shape


def test_the_pre_filter_never_drops_a_record_the_full_decode_keeps():
    import random

    import msgspec

    from streams.core.records import MalformedRecord, decode_json, may_matter, normalise, unwrap

    rng = random.Random(3)
    records = fuzzing.corpus()
    dropped = 0
    for _ in range(6000):
        raw = fuzzing.encode(fuzzing.mutate(rng.choice(records), rng), rng)
        if may_matter(raw):
            continue
        dropped += 1
        try:
            event = normalise(unwrap(decode_json(raw)))
        except (MalformedRecord, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            continue
        assert event is None, raw[:300]
    assert dropped > 1000  # the filter did drop many: the assertion above was exercised
