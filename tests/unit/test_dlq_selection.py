"""Which dead letters `exfilguard dlq` groups together and which it re-drives."""

from __future__ import annotations

import pytest

from streams.cli.dlq import reason_group
from streams.errors import UserError
from streams.kafka.deadletters import DeadLetter, parse_ranges, select


def letter(partition: int, offset: int, reason: str, source: str = "cloudtrail/0/5") -> DeadLetter:
    return DeadLetter(partition, offset, None, b"{}", reason, source, False, 0)


def test_reasons_group_by_their_kind_and_the_group_is_a_prefix():
    reasons = ["error: KeyError: 'x'", "malformed: not JSON (line 1 column 2 (char 1))",
               "malformed: empty record (no message value)",
               "error: RuntimeError: injected fault on theft-0005"]
    groups = [reason_group(r) for r in reasons]
    assert groups == ["error: KeyError", "malformed: not JSON", "malformed: empty record",
                      "error: RuntimeError"]
    assert all(r.startswith(g) for r, g in zip(reasons, groups, strict=True))


def test_records_are_chosen_by_reason_prefix_or_offset_range():
    letters = [letter(0, 1, "error: KeyError: 'x'"), letter(0, 2, "malformed: not JSON"),
               letter(1, 7, "malformed: not JSON"), letter(1, 9, "error: KeyError: 'y'")]
    assert [x.position for x in select(letters, ["error:"], [])] == ["0:1", "1:9"]
    assert [x.position for x in select(letters, [], parse_ranges(["1:7-8"]))] == ["1:7"]
    assert [x.position for x in select(letters, ["error: KeyError"], parse_ranges(["0:2"]))
            ] == ["0:1", "0:2", "1:9"]


def test_a_record_of_a_batch_goes_back_to_its_partition_as_a_batch():
    one = letter(0, 1, "error: X", source="cloudtrail/3/120#7")
    assert (one.source_partition, one.from_batch) == (3, True)
    other = letter(0, 2, "error: X", source="exfilguard-instance-events/1/9")
    assert (other.source_partition, other.from_batch) == (1, False)


@pytest.mark.parametrize("spec", ["0", "a:1-2", "0:5-3", "0:x"])
def test_an_unreadable_range_is_one_line(spec):
    with pytest.raises(UserError, match="--offsets"):
        parse_ranges([spec])
