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
