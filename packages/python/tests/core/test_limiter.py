"""RateLimiter without HTTP: keys, cost, overrides, peek/reset/clear/stats, resolvers, telemetry, decorators."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from halt import (
    Algorithm,
    DecisionEvent,
    HaltConfigError,
    InMemoryStore,
    Policy,
    RateLimiter,
    RateLimitExceeded,
    Telemetry,
    presets,
)
from halt.http.request import BasicRequestView
from tests.support import FakeClock

T0 = 1_700_000_000_000


def make(policy: Any = None, **kw: Any) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock(T0)
    return RateLimiter(policy=policy or Policy(name="api", limit=3, window=60), clock=clock, **kw), clock


def test_admits_the_limit_then_rejects_with_retry_after() -> None:
    limiter, clock = make()
    ds = [limiter.check("user:42") for _ in range(4)]
    assert [d.allowed for d in ds] == [True, True, True, False]
    assert [d.remaining for d in ds] == [2, 1, 0, 0]
    last = ds[3]
    assert (last.limit, last.policy, last.reason, last.retry_after) == (3, "api", "limit", 20)
    assert last.reset_at == (T0 + 60_000) // 1000
    clock.advance(20_000)
    assert limiter.check("user:42").allowed
    assert limiter.check("user:7").remaining == 2  # another key: its own limit


def test_cost_and_algorithm_override() -> None:
    limiter, _ = make(Policy(name="api", limit=10, window=60))
    assert limiter.check("k", cost=7).remaining == 3
    assert not limiter.check("k", cost=4).allowed
    d = limiter.check("k", algorithm=Algorithm.FIXED_WINDOW)  # its state is kept apart
    assert d.allowed and d.remaining == 9
    assert limiter.check("k", cost=11).reason == "cost_exceeds_capacity"
    with pytest.raises(HaltConfigError) as e:
        limiter.check("k", cost=-1)
    assert e.value.code == "HALT_INVALID_COST"


def test_peek_reset_clear_stats() -> None:
    limiter, _ = make()
    limiter.check("a")
    assert limiter.peek("a").remaining == 2
    assert limiter.peek("a").remaining == 2
    assert limiter.allow("a") is True
    limiter.check("a", algorithm="gcra")
    s = limiter.stats()
    assert (s.allowed, s.blocked, s.total_checks, s.active_keys) == (3, 0, 3, 2)
    limiter.reset("a")  # every algorithm used with it
    assert limiter.peek("a").remaining == 3 and limiter.stats().active_keys == 0
    limiter.check("b")
    limiter.clear()
    s = limiter.stats()
    assert (s.allowed, s.blocked, s.active_keys) == (0, 0, 0)


def test_cleanup_expired() -> None:
    store = InMemoryStore(sweep_interval=0)
    limiter, clock = make(store=store)
    limiter.check("a")
    limiter.check("b")
    assert limiter.cleanup_expired() == 0
    clock.advance(60_000)
    limiter.check("c")  # the store's latest time moves on
    # Inserting "c" may already have reclaimed one of them (when it lands in the same stripe: string hashes, and so
    # stripes, differ from run to run); the sweep takes what is left.
    assert limiter.cleanup_expired() in (1, 2)
    assert store.size() == 1


def test_block_duration_cooldown() -> None:
    limiter, clock = make(presets.AUTH_ENDPOINTS)
    for _ in range(10):
        assert limiter.check("ip:1").allowed
    d = limiter.check("ip:1")
    assert (d.allowed, d.reason, d.retry_after) == (False, "limit", 300)
    clock.advance(60_000)
    d = limiter.check("ip:1")
    assert (d.reason, d.retry_after, d.remaining) == ("cooldown", 240, 0)
    clock.advance(240_000)
    assert limiter.check("ip:1").allowed


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"policy": None}, "HALT_MISSING_POLICY"),
        ({"policy": lambda req: None}, "HALT_MISSING_DEFAULT_POLICY"),
        ({"policy": presets.PUBLIC_API, "default_policy": presets.PLAN_FREE}, "HALT_INVALID_OPTIONS"),
        ({"policy": presets.PUBLIC_API, "store": object()}, "HALT_INVALID_STORE"),
        ({"policy": presets.PUBLIC_API, "cost": -2}, "HALT_INVALID_COST"),
        ({"policy": presets.PUBLIC_API, "cost": 121}, "HALT_COST_EXCEEDS_CAPACITY"),
        ({"policy": presets.PUBLIC_API, "clock": 5}, "HALT_INVALID_CLOCK"),
        ({"policy": presets.PUBLIC_API, "timeout": 0}, "HALT_INVALID_TIMEOUT"),
        ({"policy": presets.PUBLIC_API, "retry_store_after": -1}, "HALT_INVALID_TIMEOUT"),
        ({"policy": presets.PUBLIC_API, "on_store_error": "ignore"}, "HALT_INVALID_ON_STORE_ERROR"),
        ({"policy": Policy(limit=1, window=1, key_strategy="custom")}, "HALT_MISSING_KEY_EXTRACTOR"),
    ],
)
def test_invalid_options(kw: dict[str, Any], code: str) -> None:
    with pytest.raises(HaltConfigError) as e:
        RateLimiter(**kw)
    assert e.value.code == code


def test_policy_resolver_by_plan() -> None:
    plans = {"k-pro": "pro"}
    warnings: list[Any] = []
    limiter = RateLimiter(
        policy=lambda req: presets.get_plan_policy(plans.get(req.header("x-api-key") or "", "free")),
        default_policy=presets.PLAN_FREE,
        clock=FakeClock(T0),
        on_warning=warnings.append,
    )
    pro = BasicRequestView(ip="203.0.113.7", path="/api", headers={"x-api-key": "k-pro"})
    free = BasicRequestView(ip="203.0.113.8", path="/api")
    assert limiter.check(pro).policy == "plan_pro" and limiter.check(pro).limit == 2000
    assert limiter.check(free).policy == "plan_free"
    assert limiter.has_policy("plan_pro") and not limiter.has_policy("plan_gold")
    assert warnings == []


def test_policy_resolver_failures_fall_back_and_warn_once() -> None:
    warnings: list[Any] = []

    def resolver(req: Any) -> Any:
        if req.path == "/raise":
            raise RuntimeError("boom")
        return {"limit": -1, "window": 1}

    limiter = RateLimiter(policy=resolver, default_policy=presets.PLAN_FREE, on_warning=warnings.append)
    for path in ("/raise", "/raise", "/bad", "/bad"):
        assert limiter.check(BasicRequestView(ip="203.0.113.7", path=path)).policy == "plan_free"
    assert [w.code for w in warnings] == ["HALT_POLICY_RESOLVER_FAILED"]


def test_cost_function_and_its_failures() -> None:
    warnings: list[Any] = []
    limiter = RateLimiter(
        policy=Policy(limit=10, window=60),
        cost=lambda req: {"/big": 5, "/nan": float("nan")}.get(req.path, 1),
        on_warning=warnings.append,
    )
    view = BasicRequestView(ip="203.0.113.7", path="/big")
    assert limiter.check(view).remaining == 5
    assert limiter.check(BasicRequestView(ip="203.0.113.7", path="/nan")).remaining == 4
    assert [w.code for w in warnings] == ["HALT_INVALID_REQUEST_COST"]
    assert limiter.debug_key(view).cost == 5


def test_request_path_exemptions_and_keys() -> None:
    limiter, _ = make(Policy(name="api", limit=1, window=60))
    assert limiter.check(BasicRequestView(ip="203.0.113.7", path="/health")).reason == "exempt"
    assert limiter.check(BasicRequestView(ip="10.0.0.8", path="/api")).reason == "exempt"
    view = BasicRequestView(ip="203.0.113.7", path="/api")
    assert limiter.check(view).allowed and not limiter.check(view).allowed
    assert limiter.stats().total_checks == 2  # exempt requests are not counted
    explained = limiter.debug_key(view)
    assert (explained.key, explained.exempt, explained.client_ip, explained.strategy) == (
        "ip:203.0.113.7",
        None,
        "203.0.113.7",
        "ip",
    )
    limiter.reset(view)
    assert limiter.check(view).allowed


def test_user_strategy() -> None:
    class User:
        id = 42

    limiter, _ = make(Policy(name="api", limit=1, window=60, key_strategy="user"))
    assert limiter.debug_key(BasicRequestView(ip="203.0.113.7", user=User())).key == "user:42"
    assert limiter.debug_key(BasicRequestView(ip="203.0.113.7")).key == "ip:203.0.113.7"


class Recorder(Telemetry):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool]] = []

    def on_check(self, event: DecisionEvent) -> None:
        self.events.append(("check", event.key, event.decision.allowed))

    def on_blocked(self, event: DecisionEvent) -> None:
        self.events.append(("blocked", event.key, event.decision.allowed))


def test_telemetry_hooks() -> None:
    t = Recorder()
    limiter, _ = make(Policy(limit=1, window=60), telemetry=t)
    limiter.check("a")
    limiter.check("a")
    assert t.events == [("check", "a", True), ("check", "a", False), ("blocked", "a", False)]


def test_a_raising_hook_never_breaks_a_request() -> None:
    class Broken(Telemetry):
        def on_allowed(self, event: DecisionEvent) -> None:
            raise RuntimeError("exporter down")

    warnings: list[Any] = []
    limiter, _ = make(Policy(limit=5, window=60), telemetry=Broken(), on_warning=warnings.append)
    assert limiter.check("a").allowed and limiter.check("a").allowed
    assert [w.code for w in warnings] == ["HALT_TELEMETRY_HOOK_FAILED"]


def test_decorators() -> None:
    limiter, _ = make(Policy(limit=2, window=60))
    calls: list[str] = []

    @limiter.limit("login")
    def login(user: str) -> str:
        calls.append(user)
        return f"hi {user}"

    @limiter.limit(lambda user_id: f"user:{user_id}")
    def send(user_id: int) -> int:
        return user_id

    assert login("ada") == "hi ada" and login("bob") == "hi bob"
    with pytest.raises(RateLimitExceeded) as e:
        login("eve")
    assert calls == ["ada", "bob"] and e.value.retry_after == 30 and e.value.decision.policy == "default"
    assert login.__name__ == "login"
    assert send(1) == 1 and send(1) == 1 and send(2) == 2
    with pytest.raises(RateLimitExceeded):
        send(1)
    with pytest.raises(HaltConfigError) as err:
        limiter.limit(42)  # type: ignore[arg-type]
    assert err.value.code == "HALT_INVALID_WRAP"
    wrapped = limiter.wrap(lambda x: x * 2, "wrapped")
    assert wrapped(2) == 4


def test_async_decorator_and_methods() -> None:
    limiter, _ = make(Policy(limit=1, window=60))

    @limiter.limit(lambda n: f"n:{n}")
    async def work(n: int) -> int:
        return n

    async def main() -> None:
        assert await work(1) == 1
        with pytest.raises(RateLimitExceeded):
            await work(1)
        assert (await limiter.acheck("x")).allowed
        assert not await limiter.aallow("x")
        assert (await limiter.apeek("y")).remaining == 1
        await limiter.areset("x")
        assert (await limiter.astats()).active_keys == 1
        await limiter.aclear()
        assert (await limiter.astats()).active_keys == 0

    asyncio.run(main())
