"""Fixtures of the chart tests (tests/helm): the chart rendered with the default values and with
every optional part enabled. helmchart.py says how it is rendered."""

from __future__ import annotations

import pytest
import yaml
from helmchart import ALL_ENABLED, render


@pytest.fixture(scope="session")
def default_docs() -> list[dict]:
    return render()


@pytest.fixture(scope="session")
def all_docs() -> list[dict]:
    return render(ALL_ENABLED)


@pytest.fixture(scope="session")
def all_values() -> dict:
    return yaml.safe_load(ALL_ENABLED.read_text())
