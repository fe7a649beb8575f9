"""Helpers of the chart tests: render helm/exfilguard with the helm that tools/helm-check.sh
builds. Without that helm binary the tests skip, saying how to get it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "exfilguard"
ALL_ENABLED = CHART / "ci" / "all-enabled-values.yaml"
HELM = Path(os.environ.get("HELM_BIN", ROOT / ".cache" / "tools" / "bin" / "helm"))


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "helm" / "tool-versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key] = value
    return pins


KUBE_VERSION = _pins()["KUBE_VERSION"]


class RenderError(Exception):
    """helm template failed; the message is helm's stderr."""


def render(*value_files: Path, set_values: dict[str, str] | None = None,
           namespace: str = "security") -> list[dict]:
    """The chart's manifests as dicts (release "exfilguard"), empty documents dropped."""
    if not HELM.is_file():
        pytest.skip(f"helm is not built at {HELM}: run tools/helm-check.sh (make helm-check)")
    cmd = [str(HELM), "template", "exfilguard", str(CHART), "--namespace", namespace,
           "--kube-version", KUBE_VERSION]
    for f in value_files:
        cmd += ["-f", str(f)]
    for key, value in (set_values or {}).items():
        cmd += ["--set", f"{key}={value}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RenderError(proc.stderr.strip())
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name_suffix: str = "") -> dict:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    names = [d["metadata"]["name"] for d in found]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {names}"
    return found[0]


def program_module(name: str):
    """A pure module of the exfilguard package, from the venv or else from the source tree."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        return importlib.import_module(name)
