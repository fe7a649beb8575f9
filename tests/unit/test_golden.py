"""``detect`` gives the same bytes as before, on the public capture and on every scenario."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
CASES = {"invictus-detect": ["tests/fixtures/invictus/CloudTrail"]}
for folder in sorted((ROOT / "tests" / "scenarios").iterdir()):
    if (folder / "records.jsonl").exists():
        config = folder / "config.yaml"
        CASES[f"scenario-{folder.name}"] = (["--config", str(config)] if config.exists() else []) \
            + [str(folder / "records.jsonl")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_detect_output_is_unchanged(name):
    if importlib.util.find_spec("plevin") is not None:
        pytest.skip("the opt-in plevin extra is installed: its country and ASN fill fields the "
                    "golden output (made without it, as `make install` does) leaves null")
    golden = GOLDEN / f"{name}.jsonl"
    assert golden.exists(), f"no golden output for {name}: generate it (tests/golden/README.md)"
    run = subprocess.run([EXFILGUARD, "detect", *CASES[name]], cwd=ROOT, capture_output=True,
                         check=False)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == golden.read_bytes()
