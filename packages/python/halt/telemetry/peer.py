"""Loads an optional dependency (prometheus-client, opentelemetry-api) when an exporter is created, so importing the
exporter's module never fails without it."""

from __future__ import annotations

import importlib
from types import ModuleType

from halt.core.errors import HaltConfigError

__all__ = ["load_peer"]


def load_peer(module: str, package: str, who: str, extra: str) -> ModuleType:
    """``import module``, or ``HALT_MISSING_PEER`` naming the package and the install extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise HaltConfigError(
            "HALT_MISSING_PEER",
            f"{who} needs the package '{package}' ({str(e).splitlines()[0] if str(e) else type(e).__name__}). "
            f"Fix: pip install 'halt-rate[{extra}]' (or pip install {package}).",
        ) from e
