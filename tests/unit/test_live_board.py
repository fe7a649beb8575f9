"""The live view's board: the latest version of each open finding, bounded, every value escaped."""

from __future__ import annotations

import json
from pathlib import Path

from streams.view.live import Board, fragment, page

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "invictus-detect.jsonl"


def finding(finding_id: str, updated: str, **changes) -> dict:
    base = json.loads(GOLDEN.read_text().splitlines()[0])
    base = {**base, "id": finding_id, "updatedAt": updated}
    base["service"] = {**base["service"], **changes}
    return base


def test_a_later_version_replaces_the_earlier_and_archived_ones_leave():
    board = Board()
    board.update(finding("a", "2024-01-01T00:00:02.000Z", count=1))
    board.update(finding("a", "2024-01-01T00:00:01.000Z", count=2))  # the topic's order wins
    board.update(finding("b", "2024-01-01T00:00:03.000Z"))
    assert [f["id"] for f in board.newest_first()] == ["b", "a"]
    assert board.findings["a"]["service"]["count"] == 2
    board.update(finding("b", "2024-01-01T00:00:04.000Z", archived=True))
    assert list(board.findings) == ["a"]


def test_the_board_keeps_the_most_recently_updated_within_its_limit():
    board = Board(limit=3)
    for n in range(6):
        board.update(finding(f"f{n}", f"2024-01-01T00:00:0{n}.000Z"))
    assert [f["id"] for f in board.newest_first()] == ["f5", "f4", "f3"]


def test_hostile_values_are_escaped_and_the_page_holds_no_finding():
    hostile = finding("c", "2024-01-01T00:00:00.000Z")
    hostile["resource"]["accessKeyDetails"]["accessKeyId"] = "<img src=x onerror=alert(1)>"
    board = Board()
    board.update(hostile)
    html = fragment(board)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'id="timeline"' in html and "1 open finding(s)" in html
    assert "no open findings" in fragment(Board())
    assert "data-id" not in page() and "setInterval(refresh, 5 * 1000)" in page()
