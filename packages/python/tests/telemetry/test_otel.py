"""halt.telemetry.otel with the OpenTelemetry SDK: metrics read back with InMemoryMetricReader, span events with
InMemorySpanExporter, on sync and asyncio stores and through FastAPI; never a key on metrics, a raw API key nowhere."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio
from fastapi import FastAPI
from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from halt import Decision, HaltConfigError, InMemoryStore, Policy, RateLimiter
from halt.adapters.fastapi import HaltMiddleware
from halt.http.request import BasicRequestView
from halt.stores.redis import AsyncRedisStore, RedisStore
from halt.telemetry import LATENCY_BUCKETS_MS, DecisionEvent
from halt.telemetry.otel import OTelTelemetry
from tests.support import FakeClock
from tests.telemetry.support import dead_redis, needs_redis

RAW_KEY = "sk_live_0a1b2c3d4e5f6789"


def meter() -> tuple[Any, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]).get_meter("halt"), reader


def tracer() -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = list(m.data.data_points)
    return out


def by_attributes(ps: list[Any]) -> dict[tuple[tuple[str, Any], ...], Any]:
    return {tuple(sorted(p.attributes.items())): p for p in ps}


def test_counts_decisions_by_policy_outcome_reason_and_shadow_and_records_durations_in_seconds() -> None:
    m, reader = meter()
    limiter = RateLimiter(
        policy=Policy(name="api", limit=2, window=60),
        store=InMemoryStore(sweep_interval=0),
        clock=FakeClock(),
        telemetry=OTelTelemetry(meter=m, span_events=False),
    )
    for _ in range(3):
        limiter.check("k")
    limiter.check(BasicRequestView(ip="10.0.0.1", path="/x"))
    ps = points(reader)
    decisions = {k: p.value for k, p in by_attributes(ps["halt.decisions"]).items()}
    base = (("halt.policy", "api"), ("halt.shadow", False))
    assert decisions == {
        tuple(sorted((("halt.outcome", "allowed"), ("halt.reason", "none"), *base))): 2,
        tuple(sorted((("halt.outcome", "blocked"), ("halt.reason", "limit"), *base))): 1,
        tuple(sorted((("halt.outcome", "exempt"), ("halt.reason", "exempt"), *base))): 1,
    }
    [duration] = ps["halt.check.duration"]
    assert dict(duration.attributes) == {"halt.policy": "api"} and duration.count == 3
    assert 0 < duration.sum < 0.1  # seconds
    assert list(duration.explicit_bounds) == [ms / 1000 for ms in LATENCY_BUCKETS_MS]
    [near] = ps["halt.near_limit"]
    assert near.value == 1 and dict(near.attributes) == {"halt.policy": "api", "halt.shadow": False}


def test_counts_store_errors_and_no_metric_carries_a_key() -> None:
    m, reader = meter()
    limiter = RateLimiter(
        policy=Policy(name="api", limit=2, window=60, key_strategy="api_key"),
        store=RedisStore(dead_redis()),
        telemetry=OTelTelemetry(meter=m, span_events=False),
        api_key_secret="a-shared-secret-of-32-characters",
        on_store_error="closed",
    )
    limiter.check(BasicRequestView(ip="203.0.113.7", headers={"x-api-key": RAW_KEY}))
    ps = points(reader)
    [err] = ps["halt.store_errors"]
    assert dict(err.attributes) == {"halt.policy": "api", "halt.operation": "check", "halt.action": "closed"}
    text = json.dumps([dict(p.attributes) for name in ps for p in ps[name]])
    assert "apikey" not in text and RAW_KEY not in text and "203.0.113.7" not in text


def test_uses_the_global_meter_provider_by_default() -> None:
    reader = InMemoryMetricReader()
    otel_metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    RateLimiter(policy=Policy(name="g", limit=2, window=60), telemetry=OTelTelemetry(span_events=False)).check("k")
    assert [p.value for p in points(reader)["halt.decisions"]] == [1]


def test_adds_halt_decision_to_the_current_span_on_a_sync_store() -> None:
    m, _ = meter()
    tr, exporter = tracer()
    limiter = RateLimiter(
        policy=Policy(name="api", limit=1, window=60), clock=FakeClock(), telemetry=OTelTelemetry(meter=m)
    )
    limiter.check("outside")  # no current span: nothing to add to
    with tr.start_as_current_span("request"):
        limiter.check("user:7")
        limiter.check("user:7")
    [span] = exporter.get_finished_spans()
    events = [(e.name, dict(e.attributes)) for e in span.events]
    assert events == [
        (
            "halt.decision",
            {
                "halt.policy": "api",
                "halt.outcome": "allowed",
                "halt.reason": "none",
                "halt.shadow": False,
                "halt.remaining": 0,
                "halt.limit": 1,
                "halt.retry_after": 0,
                "halt.cost": 1,
                "halt.key": "user:7",
            },
        ),
        (
            "halt.near_limit",
            {"halt.policy": "api", "halt.remaining": 0, "halt.limit": 1, "halt.shadow": False, "halt.key": "user:7"},
        ),
        (
            "halt.decision",
            {
                "halt.policy": "api",
                "halt.outcome": "blocked",
                "halt.reason": "limit",
                "halt.shadow": False,
                "halt.remaining": 0,
                "halt.limit": 1,
                "halt.retry_after": 60,
                "halt.cost": 1,
                "halt.key": "user:7",
            },
        ),
    ]


async def test_adds_halt_decision_to_the_current_span_on_an_asyncio_store() -> None:
    url = needs_redis()
    m, _ = meter()
    tr, exporter = tracer()
    client = redis.asyncio.Redis.from_url(url)
    limiter = RateLimiter(
        policy=Policy(name="api", limit=5, window=60),
        store=AsyncRedisStore(client, prefix=f"t{uuid.uuid4().hex[:8]}:"),
        telemetry=OTelTelemetry(meter=m),
    )
    with tr.start_as_current_span("request"):
        await limiter.acheck("user:8")
    await client.aclose()
    [span] = exporter.get_finished_spans()
    [event] = span.events
    assert event.name == "halt.decision" and event.attributes["halt.remaining"] == 4
    assert event.attributes["halt.key"] == "user:8"


def fastapi_app(telemetry: OTelTelemetry, tr: Any) -> Any:
    limiter = RateLimiter(
        policy=Policy(name="api", limit=1, window=60, key_strategy="api_key"),
        telemetry=telemetry,
        on_warning=lambda w: None,
    )
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter)

    @app.get("/api")
    async def api() -> str:
        return "ok"

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        # What an HTTP instrumentation does: the request runs inside its span.
        with tr.start_as_current_span(f"{scope['method']} {scope['path']}"):
            await app(scope, receive, send)

    return traced


@pytest.mark.parametrize("record_key", [True, False])
async def test_through_fastapi_the_request_span_carries_the_decision_the_api_key_only_hashed(record_key: bool) -> None:
    m, reader = meter()
    tr, exporter = tracer()
    app = fastapi_app(OTelTelemetry(meter=m, record_key=record_key), tr)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r1 = await client.get("/api", headers={"X-API-Key": RAW_KEY})
        r2 = await client.get("/api", headers={"Authorization": f"Bearer {RAW_KEY}"})
    assert (r1.status_code, r2.status_code) == (200, 429)
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["GET /api", "GET /api"]
    decisions = [e for s in spans for e in s.events if e.name == "halt.decision"]
    assert [e.attributes["halt.outcome"] for e in decisions] == ["allowed", "blocked"]
    keys = [e.attributes.get("halt.key") for e in decisions]
    if record_key:
        assert keys[0] == keys[1] and str(keys[0]).startswith("apikey:")
    else:
        assert keys == [None, None]
    everything = json.dumps(
        [[dict(e.attributes) for e in s.events] for s in spans]
        + [[dict(p.attributes) for p in ps] for ps in points(reader).values()]
    )
    assert RAW_KEY not in everything


def test_store_errors_and_near_limit_signals_become_span_events_too() -> None:
    m, _ = meter()
    tr, exporter = tracer()
    t = OTelTelemetry(meter=m)
    limiter = RateLimiter(policy=Policy(name="api", limit=5, window=60), store=RedisStore(dead_redis()), telemetry=t)
    with tr.start_as_current_span("request"):
        limiter.check("k")
        t.on_near_limit(DecisionEvent("", 1, Decision(True, 5, 1, 0, 0, "api"), shadow=True))
    [span] = exporter.get_finished_spans()
    names = [e.name for e in span.events]
    assert names == ["halt.store_error", "halt.decision", "halt.near_limit"]
    error = dict(span.events[0].attributes)
    assert (error["halt.action"], error["halt.operation"]) == ("fallback", "check")
    assert "refused" in str(error["exception.message"]).lower() or "111" in str(error["exception.message"])
    assert span.events[1].attributes["halt.store_error"] == "fallback"
    assert dict(span.events[2].attributes) == {
        "halt.policy": "api",
        "halt.remaining": 1,
        "halt.limit": 5,
        "halt.shadow": True,
    }


def test_rejects_something_that_is_not_a_meter() -> None:
    for bad in ({}, object(), "meter"):
        with pytest.raises(HaltConfigError) as e:
            OTelTelemetry(meter=bad)
        assert e.value.code == "HALT_INVALID_TELEMETRY"
