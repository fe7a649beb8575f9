"""The short form of `make chaos`: two trials, each a worker or the broker killed -9 at a point
of the stream drawn from a fixed seed (CHAOS_SEED to draw others; `make chaos` draws new ones
each run), every finding then there with its exact count."""

from __future__ import annotations

import os

import chaos
import pytest

# In `make test`, and alone as `make chaos-short`; `make chaos` is the long form.
pytestmark = pytest.mark.chaos


def test_two_random_kills_lose_nothing(tmp_path, capsys):
    passed, failed = chaos.run(2, seed=int(os.environ.get("CHAOS_SEED", "20261202")),
                               workdir=tmp_path, keep=tmp_path / "kept")
    report = capsys.readouterr().out
    assert passed == 2, report + "".join(
        (folder / "summary.txt").read_text() for folder in failed)
