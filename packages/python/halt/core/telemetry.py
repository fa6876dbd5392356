"""The telemetry a limiter emits (halt.telemetry), under the core path it had first: events, hooks, hub, exporters.
The same names as halt.telemetry, from its one list."""

from __future__ import annotations

from halt.telemetry import *  # noqa: F403
from halt.telemetry import __all__ as __all__
