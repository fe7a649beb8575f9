"""``detect`` gives the same bytes as before, on the public capture and on every scenario."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
# (config file or None, input): each run with geoip off, so the output is the same whether or
# not an enrichment source (the opt-in plevin extra) is installed.
CASES = {"invictus-detect": (None, "tests/fixtures/invictus/CloudTrail")}
for folder in sorted((ROOT / "tests" / "scenarios").iterdir()):
    if (folder / "records.jsonl").exists():
        config = folder / "config.yaml"
        CASES[f"scenario-{folder.name}"] = (config if config.exists() else None,
                                            str(folder / "records.jsonl"))


def without_geoip(config: Path | None, folder: Path) -> Path:
    settings = yaml.safe_load(config.read_text()) if config else {}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({**(settings or {}), "geoip": False}))
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_detect_output_is_unchanged(name, tmp_path):
    golden = GOLDEN / f"{name}.jsonl"
    assert golden.exists(), f"no golden output for {name}: generate it (tests/golden/README.md)"
    config, source = CASES[name]
    run = subprocess.run([EXFILGUARD, "detect", "--config", str(without_geoip(config, tmp_path)),
                          source], cwd=ROOT, capture_output=True, check=False)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == golden.read_bytes()
