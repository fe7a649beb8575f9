"""Faust wiring only (``faust -A streams.app worker``, ``exfilguard worker``). ``app`` is built on
first access from ``EXFILGUARD_CONFIG`` and ``EXFILGUARD_*``, so importing a submodule builds
nothing. May import core, config, sources, kafka, aws, geo; never cli."""

from __future__ import annotations

from typing import Any

_app: Any = None


def __getattr__(name: str) -> Any:
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        from streams.app.wiring import create_app
        from streams.config.loader import load_config

        _app = create_app(load_config())
    return _app
