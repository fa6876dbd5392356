"""MetricsTelemetry: in-process counters (by outcome, reason and policy) and a histogram of check latency, read with
snapshot()."""

from __future__ import annotations

import math
import threading
from typing import Any, Optional, Sequence

from halt.core.errors import HaltConfigError

from .labels import LATENCY_BUCKETS_MS, outcome_of, reason_of
from .types import DecisionEvent, StoreErrorEvent

__all__ = ["MetricsTelemetry", "valid_buckets"]


class _Counts:
    __slots__ = (
        "allowed",
        "blocked",
        "exempt",
        "near_limit",
        "reasons",
        "shadow_allowed",
        "shadow_blocked",
        "store_errors",
    )

    def __init__(self) -> None:
        self.allowed = 0
        self.blocked = 0
        self.exempt = 0
        self.shadow_allowed = 0
        self.shadow_blocked = 0
        self.near_limit = 0
        self.store_errors = 0
        self.reasons: dict[str, int] = {}

    def add(self, e: DecisionEvent, outcome: str) -> None:
        if e.shadow and outcome != "exempt":
            if outcome == "allowed":
                self.shadow_allowed += 1
            else:
                self.shadow_blocked += 1
        elif outcome == "allowed":
            self.allowed += 1
        elif outcome == "blocked":
            self.blocked += 1
        else:
            self.exempt += 1
        if outcome == "blocked":
            r = reason_of(e.decision)
            self.reasons[r] = self.reasons.get(r, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "checks": self.allowed + self.blocked + self.exempt + self.shadow_allowed + self.shadow_blocked,
            "allowed": self.allowed,
            "blocked": self.blocked,
            "exempt": self.exempt,
            "shadow": {"allowed": self.shadow_allowed, "blocked": self.shadow_blocked},
            "near_limit": self.near_limit,
            "by_reason": dict(self.reasons),
            "store_errors": self.store_errors,
        }


def valid_buckets(b: object) -> bool:
    """Whether ``b`` is a non-empty sequence of increasing, positive, finite numbers."""
    if not isinstance(b, (list, tuple)) or len(b) == 0:
        return False
    previous = 0.0
    for x in b:
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x) or not x > previous:
            return False
        previous = x
    return True


class MetricsTelemetry:
    """Counts decisions in process and keeps a latency histogram; ``snapshot()`` reads them, ``reset()`` zeroes
    them. Thread-safe. For a scrape endpoint use ``halt.telemetry.prometheus``; for OpenTelemetry,
    ``halt.telemetry.otel``.

    ``snapshot()`` is a dict: ``checks``, ``allowed``, ``blocked``, ``exempt``, ``shadow`` (``allowed``,
    ``blocked``: decisions of shadow policies, counted apart), ``near_limit``, ``by_reason`` (rejections by reason),
    ``store_errors``, ``by_policy`` (the same counts per policy name) and ``latency`` (``count``, ``sum_ms``,
    ``max_ms``, ``buckets``: cumulative ``{"le_ms", "count"}``, the last one ``math.inf``). Exempt requests reach no
    store and are not timed.

    Example::

        metrics = MetricsTelemetry()
        limiter = RateLimiter(policy=presets.PUBLIC_API, telemetry=metrics)
        metrics.snapshot()["blocked"]
        metrics.quantile(0.99)  # ms: the upper bound of the bucket holding the 99th percentile
    """

    def __init__(self, *, buckets: Optional[Sequence[float]] = None) -> None:
        b = LATENCY_BUCKETS_MS if buckets is None else buckets
        if not valid_buckets(b):
            raise HaltConfigError(
                "HALT_INVALID_TELEMETRY",
                "MetricsTelemetry: buckets must be increasing positive milliseconds, e.g. [0.1, 1, 10, 100].",
            )
        self._bounds: tuple[float, ...] = tuple(b)
        self._lock = threading.Lock()
        self._zero()

    def _zero(self) -> None:
        self._total = _Counts()
        self._policies: dict[str, _Counts] = {}
        self._hist = [0] * (len(self._bounds) + 1)
        self._count = 0
        self._sum = 0.0
        self._max = 0.0

    def on_check(self, e: DecisionEvent) -> None:
        outcome = outcome_of(e.decision)
        ms = e.duration_ms
        with self._lock:
            self._total.add(e, outcome)
            self._policy(e.decision.policy).add(e, outcome)
            if ms is None or not ms >= 0:
                return
            i = 0
            bounds = self._bounds
            while i < len(bounds) and ms > bounds[i]:
                i += 1
            self._hist[i] += 1
            self._count += 1
            self._sum += ms
            if ms > self._max:
                self._max = ms

    def on_near_limit(self, e: DecisionEvent) -> None:
        with self._lock:
            self._total.near_limit += 1
            self._policy(e.decision.policy).near_limit += 1

    def on_error(self, e: StoreErrorEvent) -> None:
        with self._lock:
            self._total.store_errors += 1
            self._policy(e.policy).store_errors += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            cumulative = 0
            buckets = []
            for i, n in enumerate(self._hist):
                cumulative += n
                buckets.append({"le_ms": self._bounds[i] if i < len(self._bounds) else math.inf, "count": cumulative})
            out = self._total.snapshot()
            out["by_policy"] = {name: c.snapshot() for name, c in self._policies.items()}
            out["latency"] = {"count": self._count, "sum_ms": self._sum, "max_ms": self._max, "buckets": buckets}
            return out

    def quantile(self, q: float) -> float:
        """The latency (ms) under which a fraction ``q`` (0-1) of checks completed, as the upper bound of the bucket
        that holds it (the largest observation for the last bucket); 0 before any check."""
        with self._lock:
            if self._count == 0:
                return 0
            rank = max(1, math.ceil(min(max(q, 0), 1) * self._count))
            seen = 0
            for i, n in enumerate(self._hist):
                seen += n
                if seen >= rank:
                    return min(self._bounds[i], self._max) if i < len(self._bounds) else self._max
            return self._max

    def reset(self) -> None:
        with self._lock:
            self._zero()

    def _policy(self, name: str) -> _Counts:
        c = self._policies.get(name)
        if c is None:
            c = self._policies[name] = _Counts()
        return c
