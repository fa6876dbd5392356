"""The telemetry hub through the limiter: order of hooks, several sinks, store failures, near-limit signals, failing
hooks (sync and coroutine) contained and reported once, durations and request ids, and the configuration errors."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio

from halt import DecisionEvent, HaltConfigError, InMemoryStore, MetricsTelemetry, Policy, RateLimiter, Telemetry
from halt.http.request import BasicRequestView
from halt.stores.redis import AsyncRedisStore, RedisStore
from halt.telemetry import TelemetryHub, request_id_of
from tests.support import FakeClock
from tests.telemetry.support import Recorder, dead_async_redis, dead_redis, needs_redis

PEER = "203.0.113.7"


def limiter(policy: Policy, telemetry: Any, **options: Any) -> RateLimiter:
    options.setdefault("store", InMemoryStore(sweep_interval=0))
    options.setdefault("clock", FakeClock())
    options.setdefault("on_warning", lambda w: None)
    return RateLimiter(policy=policy, telemetry=telemetry, **options)


def test_on_check_then_allowed_or_blocked_for_every_decision_exempt_ones_included_peek_reports_nothing() -> None:
    r = Recorder()
    lim = limiter(Policy(name="api", limit=1, window=60), r, near_limit=1)
    lim.check("a")
    lim.check("a")
    lim.peek("a")
    lim.check(BasicRequestView(ip="127.0.0.1", path="/api"))
    assert r.names() == ["check", "allowed", "near_limit", "check", "blocked", "check", "allowed"]
    first, blocked, exempt = r.events[0][1], r.events[4][1], r.events[6][1]
    assert (first.key, first.cost, first.decision.allowed, first.request_id) == ("a", 1, True, None)
    assert first.duration_ms is not None and first.duration_ms >= 0
    assert (blocked.decision.reason, blocked.store_error, blocked.shadow) == ("limit", None, False)
    assert (exempt.key, exempt.cost, exempt.decision.reason, exempt.duration_ms) == ("ip:127.0.0.1", 0, "exempt", None)
    assert exempt.request_id is not None and len(exempt.request_id) == 8


def test_several_sinks_are_called_in_order_each_with_the_same_event_and_mappings_are_sinks() -> None:
    calls: list[tuple[str, Any]] = []
    sinks = [
        {"on_check": lambda e: calls.append(("first", e))},
        {"on_check": lambda e: calls.append(("second", e)), "on_blocked": lambda e: calls.append(("blocked", e))},
    ]
    lim = limiter(Policy(limit=1, window=60), sinks)
    lim.check("k")
    lim.check("k")
    assert [c[0] for c in calls] == ["first", "second", "first", "second", "blocked"]
    assert calls[2][1] is calls[3][1] is calls[4][1]


def test_class_instances_are_called_with_their_own_self_and_base_class_no_ops_are_skipped() -> None:
    class Counter(Telemetry):
        def __init__(self) -> None:
            self.n = 0

        def on_check(self, event: DecisionEvent) -> None:
            self.n += 1

    c = Counter()
    lim = limiter(Policy(limit=1, window=60), c)
    lim.check("k")
    assert c.n == 1
    hub = TelemetryHub(c, lambda code, message: None)
    assert not hub.has_near_limit  # the inherited on_near_limit is the base's no-op: not listened to


@pytest.mark.parametrize("mode", ["fallback", "open", "closed"])
def test_a_store_failure_reaches_on_error_first_then_the_failure_policy_decision_with_store_error(mode: str) -> None:
    r = Recorder()
    lim = limiter(Policy(name="api", limit=2, window=60), r, store=RedisStore(dead_redis()), on_store_error=mode)
    d = lim.check(BasicRequestView(ip=PEER, headers={"x-request-id": "req-1"}))
    names = r.names()
    assert names[:3] == ["error", "check", "allowed" if mode != "closed" else "blocked"]
    err, event = r.events[0][1], r.events[1][1]
    assert (err.key, err.policy, err.operation, err.action) == (f"ip:{PEER}", "api", "check", mode)
    assert isinstance(err.error, redis.ConnectionError)
    assert (event.store_error, event.request_id, event.decision) == (mode, "req-1", d)
    assert d.reason == (None if mode == "fallback" else "store_error")
    lim.peek("x")  # the circuit is open now: peek takes the failure policy, and reports no decision
    assert r.names() == names


@pytest.mark.parametrize("mode", ["fallback", "open", "closed"])
async def test_acheck_on_an_asyncio_store_that_is_down_reports_the_error_and_the_decision(mode: str) -> None:
    r = Recorder()
    client = dead_async_redis()
    lim = limiter(Policy(name="api", limit=2, window=60), r, store=AsyncRedisStore(client), on_store_error=mode)
    d = await lim.acheck("user:7")
    assert r.names()[:2] == ["error", "check"]
    assert r.events[0][1].action == mode and r.events[1][1].store_error == mode and r.events[1][1].decision == d
    await client.aclose()


async def test_acheck_on_a_sync_remote_store_reports_from_the_worker_thread() -> None:
    r = Recorder()
    lim = limiter(Policy(name="api", limit=2, window=60), r, store=RedisStore(dead_redis()), on_store_error="open")
    d = await lim.acheck("user:7")
    assert d.reason == "store_error" and r.names()[:3] == ["error", "check", "allowed"]


def test_near_limit_fires_once_per_approach_when_an_admission_crosses_the_fraction() -> None:
    r = Recorder()
    clock = FakeClock()
    lim = limiter(Policy(name="api", limit=10, window=60, algorithm="fixed_window"), r, clock=clock)
    for _ in range(7):
        lim.check("k")
    assert "near_limit" not in r.names()
    lim.check("k")  # 8 of 10 used: 0.8 reached
    lim.check("k")
    lim.check("k")
    lim.check("k")  # rejected
    near = [e for name, e in r.events if name == "near_limit"]
    assert len(near) == 1 and near[0].decision.remaining == 2 and near[0].duration_ms is None
    clock.advance(60_000)
    lim.check("k", cost=6)
    lim.check("k", cost=3)  # from 6 to 9 used: crosses 8
    assert len([n for n in r.names() if n == "near_limit"]) == 2


def test_near_limit_option_is_checked() -> None:
    for bad in (0, 1.5, -0.1, float("nan"), "0.8", True):
        with pytest.raises(HaltConfigError) as e:
            RateLimiter(policy=Policy(limit=1, window=1), near_limit=bad)  # type: ignore[arg-type]
        assert e.value.code == "HALT_INVALID_NEAR_LIMIT"
    RateLimiter(policy=Policy(limit=1, window=1), near_limit=1)


HOOK_NAMES = ["on_check", "on_allowed", "on_blocked", "on_near_limit", "on_error"]


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_a_raising_hook_leaves_decisions_unchanged_the_next_sink_runs_and_it_is_reported_once(hook: str) -> None:
    def boom(event: Any) -> None:
        raise RuntimeError("exporter down")

    warnings: list[Any] = []
    after = Recorder()
    bad_store = hook == "on_error"
    store = RedisStore(dead_redis()) if bad_store else InMemoryStore(sweep_interval=0)
    lim = limiter(
        Policy(name="api", limit=2, window=60), [{hook: boom}, after], store=store, on_warning=warnings.append
    )
    plain = limiter(Policy(name="api", limit=2, window=60), None, store=InMemoryStore(sweep_interval=0))
    got = [lim.check("k") for _ in range(4)]
    if not bad_store:
        assert got == [plain.check("k") for _ in range(4)]
    assert [w.code for w in warnings] == ["HALT_TELEMETRY_HOOK_FAILED"]
    assert f"the telemetry hook {hook} failed (exporter down)" in warnings[0].message
    assert len(after.events) >= 4  # the sink after the failing one still heard everything


async def test_a_failing_coroutine_hook_is_not_awaited_by_the_request_and_is_reported_once() -> None:
    warnings: list[Any] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_then_fail(event: Any) -> None:
        started.set()
        await release.wait()
        raise ValueError("collector unreachable")

    lim = limiter(Policy(limit=5, window=60), {"on_check": slow_then_fail}, on_warning=warnings.append)
    d = await lim.acheck("k")
    assert d.allowed and warnings == []  # answered while the hook still runs
    await asyncio.wait_for(started.wait(), 5)
    release.set()
    for _ in range(100):
        if warnings:
            break
        await asyncio.sleep(0)  # let the hook's task finish: no wall-clock wait
    assert [w.code for w in warnings] == ["HALT_TELEMETRY_HOOK_FAILED"]
    assert "collector unreachable" in warnings[0].message


def test_a_coroutine_hook_of_a_sync_check_runs_on_a_background_loop() -> None:
    warnings: list[Any] = []
    seen: list[tuple[str, str]] = []
    reported = threading.Event()

    def warn(w: Any) -> None:
        warnings.append(w)
        reported.set()

    async def record(event: Any) -> None:
        seen.append((event.key, threading.current_thread().name))
        if event.key == "fail":
            raise OSError("no route")

    lim = limiter(Policy(limit=5, window=60), {"on_check": record}, on_warning=warn)
    lim.check("ok")
    lim.check("fail")
    assert reported.wait(5)  # reported from the background loop's thread
    assert seen == [("ok", "halt-telemetry"), ("fail", "halt-telemetry")]
    assert [w.code for w in warnings] == ["HALT_TELEMETRY_HOOK_FAILED"] and "no route" in warnings[0].message


def test_duration_ms_covers_the_store_call() -> None:
    url = needs_redis()
    r = Recorder()
    client = redis.Redis.from_url(url)
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    lim = limiter(Policy(name="api", limit=5, window=60), r, store=RedisStore(client, prefix=prefix))
    lim.check("k")  # connected, script loaded
    admin = redis.Redis.from_url(url)
    admin.execute_command("CLIENT", "PAUSE", "60", "WRITE")  # Redis holds the script call for 60 ms
    t0 = time.perf_counter()
    lim.check("k")
    wall = (time.perf_counter() - t0) * 1000
    admin.close()
    client.close()
    durations = [e.duration_ms for name, e in r.events if name == "check"]
    assert durations[1] is not None and 40 <= durations[1] <= wall
    assert durations[0] is not None and durations[0] < 40


def test_request_id_is_the_header_when_printable_and_short_else_made_up() -> None:
    def rid(value: Any) -> str:
        return request_id_of(BasicRequestView(ip=PEER, headers={} if value is None else {"x-request-id": value}))

    assert rid("8f1") == "8f1" and rid("x" * 64) == "x" * 64
    for bad in (None, "", "a b", "x" * 65, "é", "a\nb"):
        made = rid(bad)
        assert len(made) == 8 and all(c in "0123456789abcdef" for c in made), bad

    class Broken:
        def header(self, name: str) -> str:
            raise RuntimeError("no headers")

    assert len(request_id_of(Broken())) == 8


def bad(telemetry: Any) -> HaltConfigError:
    with pytest.raises(HaltConfigError) as e:
        RateLimiter(policy=Policy(limit=1, window=1), telemetry=telemetry)
    assert e.value.code == "HALT_INVALID_TELEMETRY"
    return e.value


def test_configuration_errors() -> None:
    assert "telemetry must be an object" in str(bad(42))
    assert "telemetry[1] must be an object" in str(bad([{"on_check": print}, None]))
    assert "telemetry.on_blocked must be a function" in str(bad({"on_blocked": "log"}))
    assert "has none of the hooks" in str(bad({}))
    assert "has none of the hooks" in str(bad(Telemetry()))
    assert "telemetry.on_decision was renamed: use on_check" in str(bad({"on_decision": print}))

    class Old:
        def on_check(self, e: Any) -> None: ...

        def on_store_error(self, e: Any) -> None: ...

    assert "use on_error" in str(bad(Old()))
    assert "pass an instance: Recorder()" in str(bad(Recorder))
    assert "telemetry[0]" in str(bad((Recorder,)))


async def test_acheck_of_requests_on_an_asyncio_store_reports_request_ids_durations_and_exempt_requests() -> None:
    url = needs_redis()
    r = Recorder()
    client = redis.asyncio.Redis.from_url(url)
    lim = limiter(
        Policy(name="api", limit=1, window=60),
        r,
        store=AsyncRedisStore(client, prefix=f"t{uuid.uuid4().hex[:8]}:"),
    )
    await lim.acheck(BasicRequestView(ip=PEER, headers={"x-request-id": "a-1"}))
    await lim.acheck(BasicRequestView(ip=PEER, headers={"x-request-id": "a-2"}))
    await lim.acheck(BasicRequestView(ip="127.0.0.1", headers={"x-request-id": "a-3"}))
    await lim.apeek(BasicRequestView(ip=PEER))
    await client.aclose()
    assert r.names() == ["check", "allowed", "near_limit", "check", "blocked", "check", "allowed"]
    checks = [e for name, e in r.events if name == "check"]
    assert [e.request_id for e in checks] == ["a-1", "a-2", "a-3"]
    assert [e.decision.reason for e in checks] == [None, "limit", "exempt"]
    assert all(e.duration_ms is not None and e.duration_ms > 0 for e in checks[:2]) and checks[2].duration_ms is None
    assert r.events[2][1].request_id == "a-1"


def test_a_made_up_request_id_is_kept_per_request_for_every_limiter_and_event() -> None:
    view = BasicRequestView(ip=PEER)
    assert request_id_of(view) == request_id_of(view)
    r = Recorder()
    first = limiter(Policy(name="a", limit=1, window=60), r)
    second = limiter(Policy(name="b", limit=5, window=60), r)
    first.check(view)
    second.check(view)
    ids = {e.request_id for _, e in r.events}
    assert len(ids) == 1 and ids == {request_id_of(view)}

    class Plain:  # a RequestView of one's own, slotted without __weakref__: one id per check, shared by its events
        __slots__ = ("ip", "method", "path", "user")

        def __init__(self) -> None:
            self.ip, self.method, self.path, self.user = PEER, "GET", "/", None

        def header(self, name: str) -> None:
            return None

    r.events.clear()
    first.reset(Plain())
    first.check(Plain())
    assert r.names() == ["check", "allowed", "near_limit"]
    assert r.events[0][1].request_id == r.events[2][1].request_id


async def test_many_concurrent_acheck_tasks_each_reach_every_sink_coroutine_hooks_included() -> None:
    url = needs_redis()
    # A blocking pool: redis-py's default one raises MaxConnectionsError under 600 concurrent calls.
    client = redis.asyncio.Redis(connection_pool=redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=20))
    metrics = MetricsTelemetry()
    seen: list[str] = []

    async def on_check(event: DecisionEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event.key)

    lim = limiter(
        Policy(name="api", limit=100, window=60),
        [metrics, {"on_check": on_check}],
        store=AsyncRedisStore(client, prefix=f"t{uuid.uuid4().hex[:8]}:"),
    )
    ds = await asyncio.gather(*(lim.acheck(f"user:{i % 5}") for i in range(600)))
    for _ in range(50):
        if len(seen) == 600:
            break
        await asyncio.sleep(0)
    await client.aclose()
    s = metrics.snapshot()
    assert s["store_errors"] == 0 and sum(d.allowed for d in ds) == 500 == s["allowed"]
    assert s["blocked"] == 100 and s["near_limit"] == 5
    assert sorted(seen) == sorted(f"user:{i % 5}" for i in range(600))
