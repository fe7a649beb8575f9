"""Faust wiring only: ``faust -A streams.app worker`` and ``exfilguard worker`` run this app.

``app`` is built on first access, from the config named by ``EXFILGUARD_CONFIG`` and the
``EXFILGUARD_*`` variables, so importing a submodule builds nothing.
"""

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
