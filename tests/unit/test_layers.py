"""The layering check (tools/check_layers.py) passes on the tree and catches what it forbids."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_layers", ROOT / "tools" / "check_layers.py")
layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layers)


def test_the_tree_keeps_its_layers():
    assert layers.main() == 0


def test_forbidden_imports_are_named(tmp_path, monkeypatch):
    for part, source in {
        "app/wiring.py": "from streams.cli.common import note\n",
        "core/rule.py": "import boto3\nfrom streams.kafka import batches\n",
        "kafka/forwarder.py": "from streams.offline.run import detect\n",
        "offline/run.py": "from streams.core.order import order_key\n",  # allowed
    }.items():
        path = tmp_path / part
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    monkeypatch.setattr(layers, "STREAMS", tmp_path)
    found = [p for path in sorted(tmp_path.rglob("*.py")) for p in layers.problems_of(path)]
    assert any("app/wiring.py" in p and "nothing imports the commands" in p for p in found)
    assert any("core/rule.py" in p and "boto3" in p for p in found)
    assert any("core/rule.py" in p and "streams.kafka" in p for p in found)
    assert any("kafka/forwarder.py" in p and "streams.offline" in p for p in found)
    assert not any("offline/run.py" in p for p in found)
