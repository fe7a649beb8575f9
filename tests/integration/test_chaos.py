"""The short form of `make chaos`: two trials, each a worker or the broker killed -9 at a random
point of the stream, every finding then there with its exact count."""

from __future__ import annotations

import chaos


def test_two_random_kills_lose_nothing(tmp_path, capsys):
    passed, failed = chaos.run(2, seed=chaos.random.SystemRandom().randrange(10**6),
                               workdir=tmp_path, keep=tmp_path / "kept")
    report = capsys.readouterr().out
    assert passed == 2, report + "".join(
        (folder / "summary.txt").read_text() for folder in failed)
