"""halt.telemetry.otel: OTelTelemetry, decisions as OpenTelemetry metrics and as events on the current span
(opentelemetry-api)."""

from __future__ import annotations

from typing import Any, Callable, Optional

from halt.core.errors import HaltConfigError

from .labels import LATENCY_BUCKETS_MS, message_of, outcome_of, reason_of
from .peer import load_peer
from .types import DecisionEvent, StoreErrorEvent

__all__ = ["OTelTelemetry"]


class OTelTelemetry:
    """Exports a limiter's telemetry through the OpenTelemetry API (the extra ``pip install 'halt-rate[otel]'``), to
    whatever SDK the application configured.

    Metrics (attributes ``halt.policy``, ``halt.outcome`` = allowed | blocked | exempt, ``halt.reason``,
    ``halt.shadow``; never the key): counters ``halt.decisions``, ``halt.near_limit``, ``halt.store_errors`` (with
    ``halt.operation``, ``halt.action``), and the histogram ``halt.check.duration`` in seconds.

    Span events on the current span (the request's, from your HTTP instrumentation): ``halt.decision`` with the
    policy, outcome, reason, remaining, limit, retry after, cost and key; ``halt.near_limit``; ``halt.store_error``.

    ``meter``: default ``metrics.get_meter("halt")`` of the global meter provider. ``span_events``: default True.
    ``record_key``: put the storage identity (``halt.key``: an address, a user id, a hashed API key) on span events;
    default True, never on metrics.

    Example::

        from halt.telemetry.otel import OTelTelemetry

        limiter = RateLimiter(policy=presets.PUBLIC_API, telemetry=OTelTelemetry())
    """

    def __init__(self, *, meter: Any = None, span_events: bool = True, record_key: bool = True) -> None:
        if meter is None:
            meter = load_peer("opentelemetry.metrics", "opentelemetry-api", "OTelTelemetry", "otel").get_meter("halt")
        if not callable(getattr(meter, "create_counter", None)) or not callable(
            getattr(meter, "create_histogram", None)
        ):
            raise HaltConfigError(
                "HALT_INVALID_TELEMETRY",
                "OTelTelemetry: meter must be an OpenTelemetry Meter (metrics.get_meter(name)).",
            )
        self._decisions = meter.create_counter("halt.decisions", unit="{decision}", description="Rate-limit decisions.")
        self._near = meter.create_counter(
            "halt.near_limit", unit="{check}", description="Checks that brought an identity close to its limit."
        )
        self._errors = meter.create_counter(
            "halt.store_errors", unit="{error}", description="Store calls that failed or timed out."
        )
        about = {"unit": "s", "description": "Time of a rate-limit check, the store call included."}
        try:
            self._duration = meter.create_histogram(
                "halt.check.duration",
                explicit_bucket_boundaries_advisory=[ms / 1000 for ms in LATENCY_BUCKETS_MS],
                **about,
            )
        except TypeError:  # opentelemetry-api before 1.23 has no bucket advice
            self._duration = meter.create_histogram("halt.check.duration", **about)
        self._current_span: Optional[Callable[[], Any]] = None
        if span_events:
            trace = load_peer("opentelemetry.trace", "opentelemetry-api", "OTelTelemetry", "otel")
            self._current_span = trace.get_current_span
        self._record_key = bool(record_key)

    def on_check(self, e: DecisionEvent) -> None:
        d = e.decision
        outcome = outcome_of(d)
        reason = reason_of(d)
        shadow = bool(e.shadow)
        self._decisions.add(
            1, {"halt.policy": d.policy, "halt.outcome": outcome, "halt.reason": reason, "halt.shadow": shadow}
        )
        if e.duration_ms is not None:
            self._duration.record(e.duration_ms / 1000, {"halt.policy": d.policy})
        span = self._span()
        if span is None:
            return
        attributes: dict[str, Any] = {
            "halt.policy": d.policy,
            "halt.outcome": outcome,
            "halt.reason": reason,
            "halt.shadow": shadow,
            "halt.remaining": d.remaining,
            "halt.limit": d.limit,
            "halt.retry_after": d.retry_after,
            "halt.cost": e.cost,
        }
        if self._record_key and e.key != "":
            attributes["halt.key"] = e.key
        if e.store_error is not None:
            attributes["halt.store_error"] = e.store_error
        span.add_event("halt.decision", attributes)

    def on_near_limit(self, e: DecisionEvent) -> None:
        d = e.decision
        shadow = bool(e.shadow)
        self._near.add(1, {"halt.policy": d.policy, "halt.shadow": shadow})
        span = self._span()
        if span is None:
            return
        attributes: dict[str, Any] = {
            "halt.policy": d.policy,
            "halt.remaining": d.remaining,
            "halt.limit": d.limit,
            "halt.shadow": shadow,
        }
        if self._record_key and e.key != "":
            attributes["halt.key"] = e.key
        span.add_event("halt.near_limit", attributes)

    def on_error(self, e: StoreErrorEvent) -> None:
        self._errors.add(1, {"halt.policy": e.policy, "halt.operation": e.operation, "halt.action": e.action})
        span = self._span()
        if span is None:
            return
        span.add_event(
            "halt.store_error",
            {
                "halt.policy": e.policy,
                "halt.operation": e.operation,
                "halt.action": e.action,
                "exception.message": message_of(e.error)[:300],
            },
        )

    def _span(self) -> Any:
        if self._current_span is None:
            return None
        span = self._current_span()
        return span if span.is_recording() else None
