"""The offline bench phase: detect's peak memory per size, measured in a child process over
generated files that are written to a temporary directory and removed after."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.offline import offline_phase  # noqa: E402


def test_the_offline_phase_reports_a_peak_per_size_and_leaves_no_files():
    before = set(Path(tempfile.gettempdir()).glob("exfilguard-bench-offline-*"))
    result = offline_phase((2_000, 8_000))
    assert set(result["peak_rss_bytes"]) == {"2000", "8000"}
    assert all(peak > 10 * 2**20 for peak in result["peak_rss_bytes"].values())
    assert result["runs"]["8000"]["records"] == 8_000
    assert result["runs"]["2000"]["records"] == 2_000
    assert set(Path(tempfile.gettempdir()).glob("exfilguard-bench-offline-*")) == before
