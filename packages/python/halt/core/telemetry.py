"""The telemetry a limiter emits (halt.telemetry), under the core path it had first: events, hooks, hub, exporters."""

from __future__ import annotations

from halt.telemetry import (
    HOOKS,
    LATENCY_BUCKETS_MS,
    DecisionEvent,
    LoggingTelemetry,
    MetricsTelemetry,
    StoreErrorEvent,
    Telemetry,
    TelemetryHub,
    TelemetryOption,
    request_id_of,
)

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
    "request_id_of",
]
