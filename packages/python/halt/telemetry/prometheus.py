"""halt.telemetry.prometheus: PrometheusTelemetry, decisions, near-limit signals, store errors and check latency as
prometheus_client metrics."""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence

from halt.core.errors import HaltConfigError

from .labels import LATENCY_BUCKETS_MS, outcome_of, reason_of
from .metrics import valid_buckets
from .peer import load_peer
from .types import DecisionEvent, StoreErrorEvent

__all__ = ["PrometheusTelemetry"]

_PREFIX = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?")


class PrometheusTelemetry:
    """Exports a limiter's telemetry as Prometheus metrics, through ``prometheus_client`` (the extra
    ``pip install 'halt-rate[prometheus]'``):

    ================================  =========  =====================================================
    metric                            type       labels
    ================================  =========  =====================================================
    ``halt_decisions_total``          counter    ``policy``, ``outcome`` (allowed, blocked, exempt),
                                                 ``reason``, ``shadow``
    ``halt_near_limit_total``         counter    ``policy``, ``shadow``
    ``halt_store_errors_total``       counter    ``policy``, ``operation``, ``action``
    ``halt_check_duration_seconds``   histogram  ``policy``
    ================================  =========  =====================================================

    No label carries a key or anything from the request: the series stay few whatever the traffic. One instance
    can serve several limiters; a second instance on the same registry shares the metrics already registered there.

    ``registry``: default ``prometheus_client.REGISTRY`` (what ``generate_latest()`` and ``start_http_server()``
    serve). ``prefix``: prepended to every name, default ``'halt_'``. ``buckets``: latency bucket bounds in seconds,
    default from 10 µs to 2.5 s.

    Example::

        from prometheus_client import start_http_server
        from halt.telemetry.prometheus import PrometheusTelemetry

        limiter = RateLimiter(policy=presets.PUBLIC_API, telemetry=PrometheusTelemetry())
        start_http_server(9100)
    """

    def __init__(
        self, *, registry: Any = None, prefix: str = "halt_", buckets: Optional[Sequence[float]] = None
    ) -> None:
        if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
            raise HaltConfigError(
                "HALT_INVALID_TELEMETRY",
                "PrometheusTelemetry: prefix must be a valid start of a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), "
                f"got {prefix!r}.",
            )
        b = tuple(ms / 1000 for ms in LATENCY_BUCKETS_MS) if buckets is None else buckets
        if not valid_buckets(b):
            raise HaltConfigError(
                "HALT_INVALID_TELEMETRY",
                "PrometheusTelemetry: buckets must be increasing positive seconds, e.g. [0.001, 0.01, 0.1].",
            )
        client = load_peer("prometheus_client", "prometheus-client", "PrometheusTelemetry", "prometheus")
        if registry is None:
            registry = client.REGISTRY
        if not isinstance(registry, client.CollectorRegistry):
            raise HaltConfigError(
                "HALT_INVALID_TELEMETRY",
                "PrometheusTelemetry: registry must be a prometheus_client CollectorRegistry "
                "(CollectorRegistry() or REGISTRY).",
            )

        def metric(kind: Any, name: str, doc: str, labels: list[str], **extra: Any) -> Any:
            full = prefix + name
            # prometheus_client refuses a second registration of a name: reuse what is there.
            known = getattr(registry, "_names_to_collectors", {}).get(full)
            if known is not None:
                return known
            return kind(full, doc, labels, registry=registry, **extra)

        self._decisions = metric(
            client.Counter,
            "decisions_total",
            "Rate-limit decisions, by policy, outcome, reason and shadow mode.",
            ["policy", "outcome", "reason", "shadow"],
        )
        self._near = metric(
            client.Counter,
            "near_limit_total",
            "Checks that brought an identity close to its limit.",
            ["policy", "shadow"],
        )
        self._errors = metric(
            client.Counter,
            "store_errors_total",
            "Store calls that failed or timed out (the failure policy answered).",
            ["policy", "operation", "action"],
        )
        self._duration = metric(
            client.Histogram,
            "check_duration_seconds",
            "Time of a rate-limit check, the store call included.",
            ["policy"],
            buckets=list(b),
        )

    def on_check(self, e: DecisionEvent) -> None:
        d = e.decision
        shadow = "true" if e.shadow else "false"
        self._decisions.labels(d.policy, outcome_of(d), reason_of(d), shadow).inc()
        if e.duration_ms is not None:
            self._duration.labels(d.policy).observe(e.duration_ms / 1000)

    def on_near_limit(self, e: DecisionEvent) -> None:
        self._near.labels(e.decision.policy, "true" if e.shadow else "false").inc()

    def on_error(self, e: StoreErrorEvent) -> None:
        self._errors.labels(e.policy, e.operation, e.action).inc()
