"""MetricsTelemetry: counts by outcome, reason and policy, shadow decisions apart, store errors, the latency histogram
and its quantiles, exact under many threads."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from halt import Decision, HaltConfigError, InMemoryStore, MetricsTelemetry, Policy, RateLimiter
from halt.http.request import BasicRequestView
from halt.stores.redis import RedisStore
from halt.telemetry import LATENCY_BUCKETS_MS, DecisionEvent
from tests.support import FakeClock
from tests.telemetry.support import dead_redis


def counts(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "checks": 0,
        "allowed": 0,
        "blocked": 0,
        "exempt": 0,
        "shadow": {"allowed": 0, "blocked": 0},
        "near_limit": 0,
        "by_reason": {},
        "store_errors": 0,
    }
    base.update(over)
    return base


def test_counts_a_limiters_decisions_by_outcome_reason_and_policy() -> None:
    m = MetricsTelemetry()
    limiter = RateLimiter(
        policy=Policy(name="api", limit=2, window=60, block_duration=30),
        store=InMemoryStore(sweep_interval=0),
        clock=FakeClock(),
        telemetry=m,
    )
    for _ in range(4):
        limiter.check("k")
    limiter.check(BasicRequestView(ip="127.0.0.1", path="/x"))
    s = m.snapshot()
    expected = counts(checks=5, allowed=2, blocked=2, exempt=1, near_limit=1, by_reason={"limit": 1, "cooldown": 1})
    assert {k: v for k, v in s.items() if k not in ("by_policy", "latency")} == expected
    assert s["by_policy"] == {"api": expected}
    assert s["latency"]["count"] == 4  # the exempt request reached no store: not timed
    assert [b["le_ms"] for b in s["latency"]["buckets"]] == [*LATENCY_BUCKETS_MS, math.inf]
    assert s["latency"]["buckets"][-1]["count"] == 4


def test_keeps_shadow_decisions_apart() -> None:
    m = MetricsTelemetry()
    m.on_check(DecisionEvent("k", 1, Decision(False, 5, 0, 0, 3, "new", "limit"), shadow=True))
    m.on_check(DecisionEvent("k", 1, Decision(True, 5, 4, 0, 0, "new"), shadow=True))
    s = m.snapshot()
    assert (s["checks"], s["blocked"], s["allowed"], s["shadow"]) == (2, 0, 0, {"allowed": 1, "blocked": 1})
    assert s["by_reason"] == {"limit": 1}


def test_counts_store_errors_per_policy() -> None:
    m = MetricsTelemetry()
    limiter = RateLimiter(policy=Policy(name="api", limit=5, window=60), store=RedisStore(dead_redis()), telemetry=m)
    limiter.check("k")
    s = m.snapshot()
    assert (s["store_errors"], s["by_policy"]["api"]["store_errors"], s["allowed"]) == (1, 1, 1)


def test_latency_histogram_cumulative_buckets_sum_max_and_quantiles() -> None:
    m = MetricsTelemetry(buckets=[1, 10, 100])
    ok = Decision(True, 5, 4, 0, 0, "api")
    for ms in (0.5, 3, 3, 40, 250):
        m.on_check(DecisionEvent("k", 1, ok, duration_ms=ms))
    m.on_check(DecisionEvent("k", 0, Decision(True, 5, 5, 0, 0, "api", "exempt")))
    lat = m.snapshot()["latency"]
    assert (lat["count"], lat["sum_ms"], lat["max_ms"]) == (5, 296.5, 250)
    assert lat["buckets"] == [
        {"le_ms": 1, "count": 1},
        {"le_ms": 10, "count": 3},
        {"le_ms": 100, "count": 4},
        {"le_ms": math.inf, "count": 5},
    ]
    assert [m.quantile(q) for q in (0, 0.2, 0.5, 0.8, 0.99, 1)] == [1, 1, 10, 100, 250, 250]
    assert MetricsTelemetry().quantile(0.5) == 0


def test_reset_zeroes_everything_and_policy_names_are_data() -> None:
    m = MetricsTelemetry()
    m.on_check(DecisionEvent("k", 1, Decision(False, 1, 0, 0, 1, "__class__", "limit"), duration_ms=1))
    assert m.snapshot()["by_policy"]["__class__"]["blocked"] == 1
    m.reset()
    s = m.snapshot()
    assert s["checks"] == 0 and s["by_policy"] == {} and s["latency"]["count"] == 0


def test_exact_under_many_threads() -> None:
    m = MetricsTelemetry()
    limiter = RateLimiter(policy=Policy(name="api", limit=1000, window=60), clock=FakeClock(), telemetry=m)
    threads, each = 8, 2000
    barrier = threading.Barrier(threads)

    def run(i: int) -> None:
        barrier.wait()
        for _ in range(each):
            limiter.check(f"k{i % 4}")

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    s = m.snapshot()
    assert s["checks"] == threads * each == s["latency"]["count"]
    assert s["allowed"] == 4 * 1000 and s["blocked"] == threads * each - 4000
    assert s["near_limit"] == 4 and s["by_reason"] == {"limit": threads * each - 4000}


@pytest.mark.parametrize("buckets", [[], [0, 1], [2, 1], [1, 1], [1, math.inf], [1, "2"], "1,2", [True, 2]])
def test_rejects_bucket_bounds_that_are_not_increasing_positive_numbers(buckets: Any) -> None:
    with pytest.raises(HaltConfigError) as e:
        MetricsTelemetry(buckets=buckets)
    assert e.value.code == "HALT_INVALID_TELEMETRY"
