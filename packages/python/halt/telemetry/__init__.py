"""Telemetry: the events a limiter emits, the hub that dispatches them, and the exporters (logging, in-process
metrics; Prometheus in halt.telemetry.prometheus, OpenTelemetry in halt.telemetry.otel). See docs/telemetry.md.

Example::

    from halt import RateLimiter, presets
    from halt.telemetry import LoggingTelemetry, MetricsTelemetry

    metrics = MetricsTelemetry()
    limiter = RateLimiter(policy=presets.PUBLIC_API, telemetry=[LoggingTelemetry(), metrics])
"""

from __future__ import annotations

from .hub import HOOKS, TelemetryHub, request_id_of
from .labels import LATENCY_BUCKETS_MS, outcome_of, reason_of
from .logging import LoggingTelemetry
from .metrics import MetricsTelemetry
from .types import DecisionEvent, StoreErrorEvent, Telemetry, TelemetryOption

__all__ = [
    "HOOKS",
    "LATENCY_BUCKETS_MS",
    "DecisionEvent",
    "LoggingTelemetry",
    "MetricsTelemetry",
    "StoreErrorEvent",
    "Telemetry",
    "TelemetryHub",
    "TelemetryOption",
    "outcome_of",
    "reason_of",
    "request_id_of",
]
