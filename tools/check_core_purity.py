"""Fail if the detection core imports Faust, a Kafka client or boto3 (directly or not).

The core must run anywhere the offline command runs; ruff checks style, this checks the rule
that makes one core serve the stream, detect, replay and backtest.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FORBIDDEN = ("faust", "mode", "aiokafka", "confluent_kafka", "kafka", "boto3", "botocore")
CORE = Path(__file__).resolve().parents[1] / "streams" / "core"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def main() -> int:
    problems = []
    for path in sorted(CORE.rglob("*.py")):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN:
                problems.append(f"{path.relative_to(CORE.parents[1])}:{line}: imports {module}")
            if top == "streams" and not module.startswith("streams.core"):
                problems.append(f"{path.relative_to(CORE.parents[1])}:{line}: imports {module}"
                                " (the core may import only streams.core)")
    for problem in problems:
        print(f"core purity: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
