"""halt.telemetry.prometheus over a real scrape: prometheus_client's own HTTP exposition of a registry fed by a Flask
app limited by Halt; the metric names and labels of the TypeScript SDK, never a key; the options."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import prometheus_client
import pytest
from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from halt import Decision, HaltConfigError, Policy, RateLimiter
from halt.adapters.flask import HaltFlask
from halt.stores.redis import RedisStore
from halt.telemetry import DecisionEvent
from halt.telemetry.prometheus import PrometheusTelemetry
from tests.support import FakeClock
from tests.telemetry.support import dead_redis

RAW_KEY = "sk_live_9f8e7d6c5b4a3210"


def decision(policy: str, outcome: str, reason: str, shadow: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The sample key of one halt_decisions_total series."""
    labels = (("outcome", outcome), ("policy", policy), ("reason", reason), ("shadow", shadow))
    return ("halt_decisions_total", labels)


@pytest.fixture
def scrape() -> Iterator[tuple[CollectorRegistry, Any]]:
    """A registry served by prometheus_client's HTTP server on loopback, and a function that scrapes it."""
    registry = CollectorRegistry()
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def get() -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
        r = httpx.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
        }
        return r.text, samples

    yield registry, get
    server.shutdown()
    thread.join(5)


def test_counts_decisions_by_policy_outcome_and_reason_times_checks_and_never_exposes_a_key(scrape: Any) -> None:
    registry, get = scrape
    limiter = RateLimiter(
        policy=Policy(name="api", limit=2, window=60, key_strategy="api_key"),
        clock=FakeClock(),
        telemetry=PrometheusTelemetry(registry=registry),
        on_warning=lambda w: None,
    )
    app = Flask(__name__)
    HaltFlask(app, limiter=limiter)

    @app.get("/api")
    def api() -> str:
        return "ok"

    client = app.test_client()
    public = {"REMOTE_ADDR": "203.0.113.7"}
    statuses = [client.get("/api", headers={"X-API-Key": RAW_KEY}, environ_base=public).status_code for _ in range(3)]
    statuses.append(client.get("/api", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code)
    assert statuses == [200, 200, 429, 200]
    text, samples = get()
    assert RAW_KEY not in text and "apikey:" not in text
    decisions = {k[1]: v for k, v in samples.items() if k[0] == "halt_decisions_total"}
    assert decisions == {
        (("outcome", "allowed"), ("policy", "api"), ("reason", "none"), ("shadow", "false")): 2,
        (("outcome", "blocked"), ("policy", "api"), ("reason", "limit"), ("shadow", "false")): 1,
        (("outcome", "exempt"), ("policy", "api"), ("reason", "exempt"), ("shadow", "false")): 1,
    }
    assert samples[("halt_near_limit_total", (("policy", "api"), ("shadow", "false")))] == 1
    assert samples[("halt_check_duration_seconds_count", (("policy", "api"),))] == 3  # exempt: not timed
    assert samples[("halt_check_duration_seconds_bucket", (("le", "+Inf"), ("policy", "api")))] == 3
    assert samples[("halt_check_duration_seconds_bucket", (("le", "2.5"), ("policy", "api")))] == 3
    assert ("halt_check_duration_seconds_bucket", (("le", "1e-05"), ("policy", "api"))) in samples
    assert "# TYPE halt_decisions_total counter" in text and "# TYPE halt_check_duration_seconds histogram" in text


def test_counts_store_errors_and_labels_shadow_decisions(scrape: Any) -> None:
    registry, get = scrape
    t = PrometheusTelemetry(registry=registry)
    limiter = RateLimiter(
        policy=Policy(name="api", limit=5, window=60),
        store=RedisStore(dead_redis()),
        telemetry=t,
        on_store_error="open",
    )
    limiter.check("k")
    t.on_check(DecisionEvent("k", 1, Decision(False, 5, 0, 0, 1, "new", "limit"), shadow=True, duration_ms=0.2))
    t.on_near_limit(DecisionEvent("k", 1, Decision(True, 5, 1, 0, 0, "new"), shadow=True))
    _, samples = get()
    assert samples[("halt_store_errors_total", (("action", "open"), ("operation", "check"), ("policy", "api")))] == 1
    assert samples[decision("api", "allowed", "store_error", "false")] == 1
    assert samples[decision("new", "blocked", "limit", "true")] == 1
    assert samples[("halt_near_limit_total", (("policy", "new"), ("shadow", "true")))] == 1


def test_several_instances_on_one_registry_share_the_metrics_and_threads_count_exactly(scrape: Any) -> None:
    import threading

    registry, get = scrape
    limiters = [
        RateLimiter(
            policy=Policy(name=f"p{i}", limit=10**6, window=60), telemetry=PrometheusTelemetry(registry=registry)
        )
        for i in range(2)
    ]

    def run(lim: RateLimiter) -> None:
        for j in range(2000):
            lim.check(f"k{j % 10}")

    ts = [threading.Thread(target=run, args=(limiters[i % 2],)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    _, samples = get()
    for name in ("p0", "p1"):
        assert samples[decision(name, "allowed", "none", "false")] == 6000


def test_registers_on_the_global_registry_by_default_with_a_custom_prefix() -> None:
    t = PrometheusTelemetry(prefix="myapp_rl_")
    RateLimiter(policy=Policy(name="api", limit=5, window=60), telemetry=t).check("k")
    text = prometheus_client.generate_latest().decode()
    assert 'myapp_rl_decisions_total{outcome="allowed",policy="api",reason="none",shadow="false"} 1.0' in text
    PrometheusTelemetry(prefix="myapp_rl_")  # a second one reuses what is registered


@pytest.mark.parametrize(
    "options",
    [{"prefix": "1abc"}, {"prefix": "a-b"}, {"prefix": 5}, {"buckets": []}, {"buckets": [0.1, 0.01]}, {"registry": {}}],
)
def test_rejects_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(HaltConfigError) as e:
        PrometheusTelemetry(**options)
    assert e.value.code == "HALT_INVALID_TELEMETRY"
