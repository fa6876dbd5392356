"""halt.adapters.django on the real Django (test clients, sync and async): settings.HALT, factory, @limit, 429."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path

from halt.adapters.django import HaltMiddleware, create_halt_middleware, limit
from halt.core.errors import HaltConfigError
from halt.core.types import Policy
from tests.http.support import T0, http_limiter

PEER = "203.0.113.7"
BODY = '{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.","retry_after":30}'

login_limiter = http_limiter(Policy(name="login", limit=1, window=60))[0]


def items(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("up")


@limit(login_limiter)
def login(request: HttpRequest) -> HttpResponse:
    return HttpResponse("welcome")


async def aitems(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


urlpatterns = [
    path("api/items", items),
    path("health", health),
    path("login", login),
    path("async/items", aitems),
]


def set_user(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
    """A stand-in for AuthenticationMiddleware: the user from a header."""

    def middleware(request: HttpRequest) -> Any:
        uid = request.META.get("HTTP_X_USER")
        request.user = SimpleNamespace(id=uid)  # type: ignore[assignment]
        return get_response(request)

    return middleware


# Middleware classes made by the factory are referenced by dotted path, as in a project's settings.
api_limiter = http_limiter(Policy(name="api", limit=2, window=60))[0]
ApiLimit = create_halt_middleware(api_limiter)
user_limiter = http_limiter(Policy(name="user", limit=1, window=60, key_strategy="user"))[0]
UserLimit = create_halt_middleware(user_limiter)
custom_limiter = http_limiter(Policy(name="custom", limit=1, window=60))[0]
CustomLimit = create_halt_middleware(
    custom_limiter, on_limited=lambda request, d: HttpResponse(f"slow down, {d.policy}", status=429)
)
# The async test client's peer is always 127.0.0.1: count it.
async_limiter = http_limiter(Policy(name="async", limit=1, window=60), exempt_private_ips=False)[0]
AsyncLimit = create_halt_middleware(async_limiter, headers="legacy")


@pytest.fixture(autouse=True)
def fresh_limiters() -> None:
    for limiter in (api_limiter, user_limiter, async_limiter, login_limiter, custom_limiter):
        limiter.clear()


@override_settings(MIDDLEWARE=[f"{__name__}.ApiLimit"])
def test_admits_with_headers_then_rejects_with_the_halt_body() -> None:
    c = Client(REMOTE_ADDR=PEER)
    r1, r2, r3 = c.get("/api/items"), c.get("/api/items"), c.get("/api/items")
    assert r1.status_code == 200 and r1["RateLimit-Limit"] == "2" and r1["RateLimit-Remaining"] == "1"
    assert r1["RateLimit-Reset"] == str(T0 // 1000 + 30)
    assert r2["RateLimit-Remaining"] == "0"
    assert r3.status_code == 429 and r3["Retry-After"] == "30"
    assert r3["Content-Type"] == "application/json; charset=utf-8"
    assert r3.content.decode() == BODY


@override_settings(MIDDLEWARE=[f"{__name__}.ApiLimit"])
def test_exempt_requests_get_no_headers() -> None:
    for _ in range(4):
        r = Client(REMOTE_ADDR=PEER).get("/health")
        assert r.status_code == 200 and not r.has_header("RateLimit-Limit")
        r = Client().get("/api/items")  # the test client's peer is 127.0.0.1: private, exempt
        assert r.status_code == 200 and not r.has_header("RateLimit-Limit")


@override_settings(MIDDLEWARE=[f"{__name__}.ApiLimit"])
def test_view_limit_stacks_with_the_middleware() -> None:
    c = Client(REMOTE_ADDR=PEER)
    r1, r2 = c.get("/login"), c.get("/login")
    assert r1.status_code == 200 and r1["RateLimit-Limit"] == "1" and r1["RateLimit-Remaining"] == "0"
    assert r2.status_code == 429 and r2["RateLimit-Limit"] == "1" and r2["Retry-After"] == "60"
    assert c.get("/api/items").status_code == 429  # the app limit counted both logins


@override_settings(MIDDLEWARE=[f"{__name__}.set_user", f"{__name__}.UserLimit"])
def test_user_strategy_reads_request_user() -> None:
    c = Client(REMOTE_ADDR=PEER)
    assert c.get("/api/items", HTTP_X_USER="alice").status_code == 200
    assert c.get("/api/items", HTTP_X_USER="alice").status_code == 429
    assert c.get("/api/items", HTTP_X_USER="bob").status_code == 200


@override_settings(
    MIDDLEWARE=["halt.adapters.django.HaltMiddleware"],
    HALT={"policy": Policy(name="s", limit=1, window=60), "trusted_proxies": ["10.0.0.0/8"], "headers": "ietf"},
)
def test_configured_from_settings() -> None:
    c = Client(REMOTE_ADDR="10.0.0.2")
    ok = c.get("/api/items", HTTP_X_FORWARDED_FOR="198.51.100.1")
    limited = c.get("/api/items", HTTP_X_FORWARDED_FOR="198.51.100.1")
    other = c.get("/api/items", HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert ok.status_code == 200 and ok["RateLimit-Policy"] == '"s";q=1;w=60'
    assert limited.status_code == 429 and limited["Retry-After"] == "60"
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("halt", "code"),
    [
        (None, "HALT_INVALID_OPTIONS"),
        ({"policy": Policy(name="s", limit=1, window=60), "trusted_proxies": ["0.0.0.0/0"]}, "HALT_TRUST_ALL_PROXIES"),
        ({"policy": Policy(name="s", limit=1, window=60), "headers": "fancy"}, "HALT_INVALID_HEADER_FORMAT"),
        ({"limiter": api_limiter, "policy": Policy(name="s", limit=1, window=60)}, "HALT_INVALID_OPTIONS"),
    ],
)
def test_bad_settings_fail_at_startup(halt: Any, code: str) -> None:
    with override_settings(HALT=halt), pytest.raises(HaltConfigError) as e:
        HaltMiddleware(lambda request: HttpResponse())
    assert e.value.code == code


@override_settings(MIDDLEWARE=[f"{__name__}.AsyncLimit"])
async def test_async_stack() -> None:
    c = AsyncClient()
    r1 = await c.get("/async/items")
    r2 = await c.get("/async/items")
    assert r1.status_code == 200 and r1["X-RateLimit-Limit"] == "1" and r1["X-RateLimit-Remaining"] == "0"
    assert r2.status_code == 429 and r2["Retry-After"] == "60" and r2.content.decode().startswith('{"error"')


@override_settings(MIDDLEWARE=[f"{__name__}.CustomLimit"])
def test_on_limited_returns_your_rejection_with_the_headers() -> None:
    c = Client(REMOTE_ADDR=PEER)
    c.get("/api/items")
    r = c.get("/api/items")
    assert r.status_code == 429 and r.content == b"slow down, custom"
    assert r["Retry-After"] == "60" and r["RateLimit-Limit"] == "1"
    with pytest.raises(HaltConfigError) as e:
        create_halt_middleware(custom_limiter, on_limited="429")  # type: ignore[arg-type]
    assert e.value.code == "HALT_INVALID_CALLBACK"


def test_an_asyncio_store_is_refused_on_the_sync_path_and_taken_on_the_async_one() -> None:
    import redis.asyncio

    from halt.core.limiter import RateLimiter
    from halt.stores.redis import AsyncRedisStore

    limiter = RateLimiter(policy=Policy(limit=1, window=60), store=AsyncRedisStore(redis.asyncio.Redis()))
    middleware = create_halt_middleware(limiter)
    with pytest.raises(HaltConfigError) as e:
        middleware(lambda request: HttpResponse())
    assert e.value.code == "HALT_ASYNC_STORE"

    async def get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    middleware(get_response)  # under ASGI the middleware awaits the store
    with pytest.raises(HaltConfigError):
        limit(limiter)(items)
    limit(limiter)(aitems)
