"""Fail where a part of ``streams`` imports what it may not: the core nothing but itself (no
Faust, Kafka client or boto3), no part the commands (``cli``), each part only the parts below it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

STREAMS = Path(__file__).resolve().parents[1] / "streams"
THIRD_PARTY_OUT_OF_CORE = ("faust", "mode", "aiokafka", "confluent_kafka", "kafka", "boto3",
                           "botocore")
# What each part may import of streams (itself always; ``errors`` and the package's
# ``__version__`` everywhere). cli may import anything and nothing may import cli.
ALLOWED = {
    "core": set(),
    "sources": {"core"},
    "config": {"core", "kafka.settings"},
    "kafka": {"core", "sources"},
    "aws": {"core", "config"},
    "geo": {"core", "config"},
    "view": {"core"},
    "offline": {"core", "config", "sources", "kafka", "aws", "geo", "view"},
    "notify": {"core", "config", "sources", "kafka", "aws", "offline"},
    "app": {"core", "config", "sources", "kafka", "aws", "geo", "view"},
    "data": set(),
}
ALWAYS = {"errors", ""}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def problems_of(path: Path) -> list[str]:
    relative = path.relative_to(STREAMS)
    part = relative.parts[0] if len(relative.parts) > 1 else ""
    where = f"streams/{relative}"
    problems = []
    for line, module in imported_modules(path):
        top = module.split(".")[0]
        if part == "core" and top in THIRD_PARTY_OUT_OF_CORE:
            problems.append(f"{where}:{line}: imports {module} (the core stays pure)")
        if top != "streams" or part in ("", "cli"):
            continue
        target = module.split(".", 2)[1] if module.count(".") >= 1 else ""
        target_module = ".".join(module.split(".")[1:3])
        if target == "cli":
            problems.append(f"{where}:{line}: imports {module} (nothing imports the commands)")
        elif target != part and target not in ALWAYS and target not in ALLOWED.get(part, set()) \
                and target_module not in ALLOWED.get(part, set()):
            problems.append(f"{where}:{line}: imports {module} ({part} may import "
                            f"{', '.join(sorted(ALLOWED.get(part, set()))) or 'only itself'})")
    return problems


def main() -> int:
    problems = [p for path in sorted(STREAMS.rglob("*.py")) for p in problems_of(path)]
    for problem in problems:
        print(f"layers: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
