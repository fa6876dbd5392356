"""The HTTP ``quota`` option through every adapter (FastAPI middleware and dependency, Flask, Django sync and async):
429 ``quota_exceeded`` with the reset time and headers, identities apart, per-plan quotas, store failures, options."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any, Callable

import django
import httpx
import pytest
import redis
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={}
    )
    django.setup()

from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from fastapi import Depends, FastAPI
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from halt import (
    HaltConfigError,
    InMemoryStore,
    Policy,
    Quota,
    QuotaManager,
    RateLimiter,
    StoreErrorEvent,
    Telemetry,
    define_plans,
)
from halt.adapters import django as halt_django
from halt.adapters.fastapi import HaltMiddleware, create_limiter_dependency
from halt.adapters.flask import HaltFlask
from halt.http.gate import Gate
from halt.http.quota import QuotaOption
from halt.stores.redis import RedisStore
from tests.http.support import view
from tests.support import FakeClock

NOW = int(datetime(2026, 1, 31, 12, tzinfo=timezone.utc).timestamp() * 1000)
RESET = int(datetime(2026, 2, 1, tzinfo=timezone.utc).timestamp())
WAIT = RESET - NOW // 1000
MONTHLY = Quota(name="api_calls", limit=3, period="monthly")
BODY = {
    "error": "quota_exceeded",
    "message": "Quota exceeded. It resets at 2026-02-01T00:00:00Z.",
    "quota": "api_calls",
    "limit": 3,
    "reset_at": "2026-02-01T00:00:00Z",
    "retry_after": WAIT,
}


def parts() -> tuple[FakeClock, RateLimiter, QuotaManager]:
    clock = FakeClock(NOW)
    store = InMemoryStore(sweep_interval=0)
    limiter = RateLimiter(
        store=store,
        clock=clock,
        policy=Policy(name="rl", limit=5, window=60, key_strategy="api_key"),
        exempt_private_ips=False,
    )
    return clock, limiter, QuotaManager(store, clock=clock)


# ---- one app per adapter, each answering (status, headers, body) for a GET with an API key ----------------------

Get = Callable[[str, str], tuple[int, dict[str, str], str]]


def fastapi_middleware() -> Get:
    _, limiter, quotas = parts()
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter, quota=QuotaOption(quotas, MONTHLY))

    @app.get("/api/x")
    async def x() -> str:
        return "ok"

    return _asgi(app)


def fastapi_dependency() -> Get:
    _, limiter, quotas = parts()
    app = FastAPI()
    dep = create_limiter_dependency(limiter, quota={"manager": quotas, "quota": MONTHLY})

    @app.get("/api/x", dependencies=[Depends(dep)])
    async def x() -> str:
        return "ok"

    app.add_middleware(HaltMiddleware, limiter=RateLimiter(policy=Policy(name="wide", limit=100, window=60)))
    return _asgi(app)


def _asgi(app: Any) -> Get:
    def get(key: str, p: str = "/api/x") -> tuple[int, dict[str, str], str]:
        async def run() -> httpx.Response:
            transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4711))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.get(p, headers={"x-api-key": key})

        r = asyncio.run(run())
        return r.status_code, dict(r.headers), r.text

    return get


def flask_app() -> Get:
    _, limiter, quotas = parts()
    app = Flask(__name__)
    HaltFlask(app, limiter=limiter, quota=QuotaOption(quotas, MONTHLY))
    app.get("/api/x")(lambda: "ok")
    c = app.test_client()

    def get(key: str, p: str = "/api/x") -> tuple[int, dict[str, str], str]:
        r = c.get(p, headers={"x-api-key": key}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
        return r.status_code, dict(r.headers), r.get_data(as_text=True)

    return get


def _x(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


async def _ax(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("api/x", _x), path("async/x", _ax)]
_django_parts = parts()
DjangoQuota = halt_django.create_halt_middleware(_django_parts[1], quota=QuotaOption(_django_parts[2], MONTHLY))


def django_sync() -> Get:
    _django_parts[1].clear()
    _django_parts[2].store.clear()
    c = Client(REMOTE_ADDR="203.0.113.9")

    def get(key: str, p: str = "/api/x") -> tuple[int, dict[str, str], str]:
        with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[f"{__name__}.DjangoQuota"]):
            r = c.get(p, HTTP_X_API_KEY=key)
        return r.status_code, dict(r.headers), r.content.decode()

    return get


def django_async() -> Get:
    _django_parts[1].clear()
    _django_parts[2].store.clear()

    def get(key: str, p: str = "/async/x") -> tuple[int, dict[str, str], str]:
        async def run() -> Any:
            with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[f"{__name__}.DjangoQuota"]):
                return await AsyncClient().get("/async/x", headers={"x-api-key": key})

        r = asyncio.run(run())
        return r.status_code, dict(r.headers), r.content.decode()

    return get


APPS = {
    "fastapi middleware": fastapi_middleware,
    "fastapi dependency": fastapi_dependency,
    "flask": flask_app,
    "django": django_sync,
    "django async": django_async,
}


@pytest.mark.parametrize("make", APPS.values(), ids=list(APPS))
def test_admits_up_to_the_quota_then_429_quota_exceeded(make: Callable[[], Get]) -> None:
    get = make()
    for i in range(3):
        status, headers, _ = get("key-a", "/api/x")
        assert status == 200, i
    status, headers, body = get("key-a", "/api/x")
    assert status == 429
    h = {k.lower(): v for k, v in headers.items()}
    assert h["retry-after"] == str(WAIT)
    assert (h["ratelimit-limit"], h["ratelimit-remaining"], h["ratelimit-reset"]) == ("3", "0", str(RESET))
    assert h["content-type"].startswith("application/json")
    assert json.loads(body) == BODY
    assert get("key-b", "/api/x")[0] == 200  # identities apart: the limiter's key strategy (the API key)


def test_django_settings_take_the_quota_option() -> None:
    _, limiter, quotas = parts()
    halt = {"limiter": limiter, "quota": QuotaOption(quotas, MONTHLY)}
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=["halt.adapters.django.HaltMiddleware"], HALT=halt):
        c = Client(REMOTE_ADDR="203.0.113.9")
        statuses = [c.get("/api/x", HTTP_X_API_KEY="k").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_the_429_body_is_the_typescript_text() -> None:
    from halt.http.headers import rejection_body

    _, _, quotas = parts()
    guard = Gate(RateLimiter(policy=Policy(limit=5, window=60)), quota=QuotaOption(quotas, MONTHLY)).limiters[1]
    d = None
    for _ in range(4):
        d = guard.check(view())
    assert d is not None
    assert rejection_body(d) == (
        '{"error":"quota_exceeded","message":"Quota exceeded. It resets at 2026-02-01T00:00:00Z.",'
        f'"quota":"api_calls","limit":3,"reset_at":"2026-02-01T00:00:00Z","retry_after":{WAIT}}}'
    )


def test_rejected_and_exempt_requests_take_no_quota() -> None:
    _, _, quotas = parts()
    tight = RateLimiter(
        policy=Policy(name="tight", limit=1, window=60, key_strategy="api_key"), exempt_private_ips=False
    )
    gate = Gate(tight, quota=QuotaOption(quotas, MONTHLY))
    req = view(headers={"x-api-key": "k"})
    assert gate.check(req).allowed
    assert not gate.check(req).allowed
    key = tight.identify(req)
    assert key is not None and quotas.check_quota(key, MONTHLY).quota.used == 1
    assert gate.check(view(path="/health", headers={"x-api-key": "k"})).reason == "exempt"
    assert quotas.check_quota(key, MONTHLY).quota.used == 1
    assert tight.identify(view(path="/health")) is None


def test_per_plan_quotas_through_a_plan_table() -> None:
    clock, _, quotas = parts()
    plans = define_plans(
        {
            "free": {
                "policy": Policy(name="free", limit=100, window=60, key_strategy="api_key"),
                "quota": Quota(name="q_free", limit=1, period="monthly"),
            },
            "pro": {
                "policy": Policy(name="pro", limit=1000, window=60, key_strategy="api_key"),
                "quota": Quota(name="q_pro", limit=3, period="monthly"),
            },
        },
        default_plan="free",
    )
    users = {"key-pro": "pro", "key-free": "free"}

    def plan_of(req: Any) -> Any:
        return users.get(req.header("x-api-key") or "")

    limiter = RateLimiter(
        clock=clock, policy=plans.resolver(plan_of), default_policy=plans.policy("free"), exempt_private_ips=False
    )
    gate = Gate(limiter, quota=QuotaOption(quotas, plans.quota_resolver(plan_of)))

    def call(key: str) -> bool:
        return gate.check(view(headers={"x-api-key": key})).allowed

    assert [call("key-free"), call("key-free")] == [True, False]
    assert [call("key-pro") for _ in range(4)] == [True, True, True, False]
    clock.now = int(datetime(2026, 2, 1, tzinfo=timezone.utc).timestamp() * 1000)
    assert call("key-free")
    # The IETF headers give the quota's period as its window.
    d = gate.check(view(headers={"x-api-key": "key-pro"}))
    out: dict[str, str] = {}
    Gate(limiter, headers="ietf", quota=QuotaOption(quotas, MONTHLY)).limiters[1].write_headers(
        d, "ietf", out, lambda t, n, v: t.__setitem__(n, v)
    )
    assert out["RateLimit-Policy"] == f'"q_pro";q=3;w={28 * 86400}'


def test_a_failing_quota_store_lets_requests_through_or_answers_503_when_closed() -> None:
    # A real Redis client on a port where nothing listens: every call fails fast.
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    errors: list[StoreErrorEvent] = []

    class Errors(Telemetry):
        def on_error(self, event: StoreErrorEvent) -> None:
            errors.append(event)

    broken = QuotaManager(RedisStore(client), telemetry=Errors())
    limiter = RateLimiter(policy=Policy(limit=5, window=60), exempt_private_ips=False)
    assert Gate(limiter, quota=QuotaOption(broken, MONTHLY)).check(view()).allowed
    d = Gate(limiter, quota=QuotaOption(broken, MONTHLY, on_store_error="closed")).check(view())
    assert (d.allowed, d.reason) == (False, "store_error")
    # Telemetry hears of each failure, with what the option did then.
    assert [(e.policy, e.operation, e.action) for e in errors] == [
        ("api_calls", "check", "open"),
        ("api_calls", "check", "closed"),
    ]
    with pytest.raises(redis.ConnectionError):
        broken.consume_quota("k", MONTHLY)
    assert errors[-1].action == "closed" and errors[-1].key == "k"

    async def run() -> Any:
        return await Gate(limiter, quota=QuotaOption(broken, MONTHLY, on_store_error="closed")).acheck(view())

    assert asyncio.run(run()).reason == "store_error"


def test_a_request_and_its_quota_carry_one_request_id() -> None:
    events: list[tuple[str, Any]] = []

    class Ids(Telemetry):
        def on_check(self, event: Any) -> None:
            events.append((event.decision.policy, event.request_id))

    clock = FakeClock(NOW)
    store = InMemoryStore(sweep_interval=0)
    limiter = RateLimiter(
        store=store,
        clock=clock,
        policy=Policy(name="rl", limit=5, window=60),
        exempt_private_ips=False,
        telemetry=Ids(),
    )
    gate = Gate(limiter, quota=QuotaOption(QuotaManager(store, clock=clock, telemetry=Ids()), MONTHLY))
    assert gate.check(view()).allowed
    assert gate.check(view(headers={"x-request-id": "r-42"})).allowed
    assert asyncio.run(gate.acheck(view(headers={"x-request-id": "r-43"}))).allowed
    assert [p for p, _ in events] == ["rl", "api_calls"] * 3
    made_up = events[0][1]
    assert isinstance(made_up, str) and len(made_up) == 8 and events[1][1] == made_up
    assert [i for _, i in events[2:]] == ["r-42", "r-42", "r-43", "r-43"]


def test_bad_options_fail_when_the_middleware_is_created() -> None:
    _, limiter, quotas = parts()

    def code(**option: Any) -> str:
        with pytest.raises(HaltConfigError) as e:
            HaltFlask(Flask(__name__), limiter=limiter, quota=option)
        return e.value.code

    assert code(manager=quotas, quota=Quota(name="x", limit=-1, period="monthly")) == "HALT_INVALID_QUOTA"
    assert code(manager=object(), quota=MONTHLY) == "HALT_INVALID_QUOTA_OPTION"
    assert code(manager=quotas, quota=MONTHLY, cost=-2) == "HALT_INVALID_QUOTA_OPTION"
    assert code(manager=quotas, quota=MONTHLY, on_store_error="maybe") == "HALT_INVALID_QUOTA_OPTION"
    assert code(manager=quotas, quota=MONTHLY, key="user") == "HALT_INVALID_QUOTA_OPTION"
    assert code(manager=quotas, quota=MONTHLY, bogus=1) == "HALT_INVALID_QUOTA_OPTION"

    class Bare:
        def check(self, req: Any) -> Any:
            return limiter.check("x")

    with pytest.raises(HaltConfigError, match=r"quota\.key"):
        Gate(Bare(), quota=QuotaOption(quotas, MONTHLY))  # type: ignore[arg-type]
    import redis.asyncio

    from halt.stores.redis import AsyncRedisStore

    async def async_store() -> None:
        remote = QuotaManager(AsyncRedisStore(redis.asyncio.Redis(port=1)))
        with pytest.raises(HaltConfigError, match="HALT_ASYNC_STORE"):
            HaltFlask(Flask(__name__), limiter=limiter, quota=QuotaOption(remote, MONTHLY))

    asyncio.run(async_store())
