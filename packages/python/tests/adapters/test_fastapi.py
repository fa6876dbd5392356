"""halt.adapters.fastapi with the real FastAPI: app-wide middleware, route dependencies, stacking, 429 and headers."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse

from halt.adapters.fastapi import (
    HALT_EXCEPTION_HANDLERS,
    HaltMiddleware,
    create_limiter_dependency,
)
from halt.core.errors import HaltConfigError
from halt.core.types import Policy
from tests.http.support import T0, http_limiter

BODY_429 = {"error": "rate_limit_exceeded", "message": "Too many requests. Please try again later.", "retry_after": 60}
CLIENT = ("203.0.113.7", 4711)


def client(app: FastAPI, peer: tuple[str, int] = CLIENT) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=peer), base_url="http://test")


def make_app(**limiter_options: Any) -> tuple[FastAPI, Any]:
    limiter, clock, _ = http_limiter(Policy(name="api", limit=2, window=60), **limiter_options)
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter)

    @app.get("/api/items")
    async def items() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/health")
    async def health() -> str:
        return "up"

    @app.get("/plain")
    async def plain() -> PlainTextResponse:
        return PlainTextResponse("hi", headers={"RateLimit-Limit": "999"})

    return app, clock


async def test_admits_with_headers_then_rejects_with_the_halt_body() -> None:
    app, _ = make_app()
    async with client(app) as c:
        r1 = await c.get("/api/items")
        r2 = await c.get("/api/items")
        r3 = await c.get("/api/items")
    assert r1.status_code == 200 and r1.json() == {"ok": True}
    assert r1.headers["ratelimit-limit"] == "2"
    assert r1.headers["ratelimit-remaining"] == "1"
    assert r1.headers["ratelimit-reset"] == str(T0 // 1000 + 30)
    assert r2.headers["ratelimit-remaining"] == "0"
    assert r3.status_code == 429
    assert r3.headers["retry-after"] == "30"
    assert r3.headers["ratelimit-remaining"] == "0"
    assert r3.headers["content-type"] == "application/json; charset=utf-8"
    assert r3.text == json.dumps({**BODY_429, "retry_after": 30}, separators=(",", ":"))


async def test_exempt_paths_and_private_peers_get_no_headers() -> None:
    app, _ = make_app()
    async with client(app) as c:
        for _ in range(5):
            r = await c.get("/health")
            assert r.status_code == 200 and "ratelimit-limit" not in r.headers
    async with client(app, ("10.1.2.3", 1)) as c:
        for _ in range(5):
            r = await c.get("/api/items")
            assert r.status_code == 200 and "ratelimit-limit" not in r.headers


async def test_the_limiter_headers_replace_a_route_s_own() -> None:
    app, _ = make_app()
    async with client(app) as c:
        r = await c.get("/plain")
    assert r.headers.get_list("ratelimit-limit") == ["2"]


async def test_trusted_proxy_header_decides_the_client() -> None:
    app, _ = make_app(trusted_proxies=["10.0.0.0/8"])
    async with client(app, ("10.0.0.2", 1)) as c:
        for _ in range(2):
            assert (await c.get("/api/items", headers={"x-forwarded-for": "198.51.100.1"})).status_code == 200
        assert (await c.get("/api/items", headers={"x-forwarded-for": "198.51.100.1"})).status_code == 429
        # another client behind the same proxy has its own limit
        assert (await c.get("/api/items", headers={"x-forwarded-for": "198.51.100.2"})).status_code == 200


async def test_user_from_request_state_user_id() -> None:
    limiter, _, _ = http_limiter(Policy(name="u", limit=1, window=60, key_strategy="user"))
    seen: list[str] = []

    async def set_user(scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["user_id"] = dict(scope["headers"])[b"x-user"].decode()  # an auth middleware
        await inner(scope, receive, send)

    app = FastAPI()

    @app.get("/me")
    async def me(request: Request) -> dict[str, str]:
        seen.append(request.state.user_id)
        return {"user": request.state.user_id}

    inner = HaltMiddleware(app, limiter=limiter)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=set_user, client=CLIENT), base_url="http://t") as c:
        assert (await c.get("/me", headers={"x-user": "alice"})).status_code == 200
        assert (await c.get("/me", headers={"x-user": "alice"})).status_code == 429
        assert (await c.get("/me", headers={"x-user": "bob"})).status_code == 200
    assert seen == ["alice", "bob"]
    assert limiter.debug_key(_view_with_user("alice")).key == "user:alice"


def _view_with_user(uid: str) -> Any:
    from halt.adapters.fastapi import AsgiRequestView

    return AsgiRequestView({"type": "http", "client": CLIENT, "headers": [], "path": "/", "state": {"user_id": uid}})


def route_app(with_middleware: bool, handlers: bool = False) -> FastAPI:
    app_limiter, _, _ = http_limiter(Policy(name="app", limit=1000, window=60))
    login_limiter, _, _ = http_limiter(Policy(name="login", limit=2, window=60))
    app = FastAPI(exception_handlers=HALT_EXCEPTION_HANDLERS if handlers else None)
    if with_middleware:
        app.add_middleware(HaltMiddleware, limiter=app_limiter)
    login_limit = create_limiter_dependency(login_limiter)

    @app.post("/login", dependencies=[Depends(login_limit)])
    async def login() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/other")
    async def other() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.mark.parametrize("with_middleware", [True, False])
async def test_route_limit_stacks_with_the_app_limit(with_middleware: bool) -> None:
    app = route_app(with_middleware, handlers=not with_middleware)
    async with client(app) as c:
        r1 = await c.post("/login")
        r2 = await c.post("/login")
        r3 = await c.post("/login")
        other = await c.get("/other")
    # the headers describe the stricter limit: the route's
    assert r1.status_code == 200 and r1.headers["ratelimit-limit"] == "2" and r1.headers["ratelimit-remaining"] == "1"
    assert r2.headers.get_list("ratelimit-remaining") == ["0"]
    assert r3.status_code == 429
    assert r3.headers["retry-after"] == "30" and r3.headers["ratelimit-limit"] == "2"
    assert r3.json() == {**BODY_429, "retry_after": 30}
    if with_middleware:
        assert other.headers["ratelimit-limit"] == "1000"
        assert other.headers["ratelimit-remaining"] == "996"  # three logins and this request
    else:
        assert "ratelimit-limit" not in other.headers


async def test_route_limit_without_handler_is_still_a_429_with_headers() -> None:
    app = route_app(with_middleware=False, handlers=False)
    async with client(app) as c:
        for _ in range(2):
            await c.post("/login")
        r = await c.post("/login")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "30"
    assert r.json() == {"detail": "Too many requests. Please try again later."}


async def test_ietf_headers_use_the_deciding_policy_window() -> None:
    limiter, _, _ = http_limiter(Policy(name="api", limit=5, window=60))
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter, headers="ietf")

    @app.get("/x")
    async def x() -> str:
        return "x"

    async with client(app) as c:
        r = await c.get("/x")
    assert r.headers["ratelimit-policy"] == '"api";q=5;w=60'
    assert r.headers["ratelimit"] == '"api";r=4;t=12'


def test_bad_adapter_options_fail_at_configuration_time() -> None:
    limiter, _, _ = http_limiter()
    with pytest.raises(HaltConfigError) as e:
        HaltMiddleware(FastAPI(), limiter=limiter, headers="fancy")
    assert e.value.code == "HALT_INVALID_HEADER_FORMAT"
    with pytest.raises(HaltConfigError) as e:
        create_limiter_dependency([])
    assert e.value.code == "HALT_INVALID_LIMITER"


async def test_non_http_scopes_pass_through() -> None:
    limiter, _, _ = http_limiter()
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    await HaltMiddleware(app, limiter=limiter)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert calls == ["lifespan"] and limiter.stats().total_checks == 0


async def test_real_uvicorn_server_on_loopback() -> None:
    """Over a real socket: the peer is 127.0.0.1, a trusted proxy here, so X-Forwarded-For names the client."""
    limiter, _, _ = http_limiter(Policy(name="api", limit=1, window=60), trusted_proxies=["loopback"])
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter)

    @app.get("/api")
    async def api() -> str:
        return "ok"

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    # proxy_headers off: uvicorn would otherwise rewrite the peer from X-Forwarded-For itself.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", proxy_headers=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            first = await c.get("/api", headers={"x-forwarded-for": "203.0.113.9"})
            second = await c.get("/api", headers={"x-forwarded-for": "203.0.113.9"})
            own = await c.get("/api")  # the proxy's own request: loopback, exempt
    finally:
        server.should_exit = True
        await task
        sock.close()
    assert first.status_code == 200 and first.headers["ratelimit-remaining"] == "0"
    assert second.status_code == 429 and second.headers["retry-after"] == "60"
    assert own.status_code == 200 and "ratelimit-limit" not in own.headers


async def test_on_limited_sends_your_rejection_with_the_headers() -> None:
    from starlette.responses import JSONResponse

    limiter, _, _ = http_limiter(Policy(name="api", limit=1, window=60))
    app = FastAPI()
    app.add_middleware(
        HaltMiddleware,
        limiter=limiter,
        on_limited=lambda scope, d: JSONResponse({"slow": "down", "policy": d.policy}, status_code=429),
    )

    @app.get("/x")
    async def x() -> str:
        return "x"

    async with client(app) as c:
        await c.get("/x")
        r = await c.get("/x")
    assert r.status_code == 429 and r.json() == {"slow": "down", "policy": "api"}
    assert r.headers["retry-after"] == "60" and r.headers["ratelimit-limit"] == "1"
    with pytest.raises(HaltConfigError) as e:
        HaltMiddleware(app, limiter=limiter, on_limited="429")  # type: ignore[arg-type]
    assert e.value.code == "HALT_INVALID_CALLBACK"


async def test_a_shaping_leaky_bucket_delays_admitted_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The middleware waits the decision's delay before passing the request on (the wait itself is recorded)."""
    import halt.adapters.fastapi as adapter

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(adapter, "_sleep", record)
    policy = Policy(name="s", limit=2, window=2, burst=3, algorithm="leaky_bucket", leaky_mode="shaping")
    limiter, _, _ = http_limiter(policy)
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter)

    @app.get("/x")
    async def x() -> str:
        return "x"

    async with client(app) as c:
        codes = [(await c.get("/x")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert waits == [1.0, 2.0]


async def test_get_ip_names_the_peer_without_touching_the_scope() -> None:
    limiter, _, _ = http_limiter(Policy(name="api", limit=1, window=60))
    app = FastAPI()
    app.add_middleware(
        HaltMiddleware, limiter=limiter, get_ip=lambda scope: dict(scope["headers"]).get(b"cf-ip", b"").decode()
    )

    @app.get("/x")
    async def x(request: Request) -> dict[str, Any]:
        return {"client": request.client.host if request.client else None}

    async with client(app) as c:
        a = await c.get("/x", headers={"cf-ip": "198.51.100.1"})
        b = await c.get("/x", headers={"cf-ip": "198.51.100.1"})
        other = await c.get("/x", headers={"cf-ip": "198.51.100.2"})
    assert (a.status_code, b.status_code, other.status_code) == (200, 429, 200)
    assert a.json() == {"client": CLIENT[0]}  # the app still sees the socket's peer


async def test_a_limit_set_sends_one_ietf_item_per_enforced_policy() -> None:
    limiter, _, _ = http_limiter(
        [
            Policy(name="per_second", limit=2, window=1, algorithm="fixed_window"),
            Policy(name="per_minute", limit=3, window=60, algorithm="fixed_window"),
            Policy(name="trial", limit=1, window=60, mode="shadow"),
        ]
    )
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter, headers="ietf")

    @app.get("/api/items")
    async def items() -> dict[str, bool]:
        return {"ok": True}

    async with client(app) as c:
        r1 = await c.get("/api/items")
        r2 = await c.get("/api/items")
        r3 = await c.get("/api/items")
    assert r1.status_code == 200 and r2.status_code == 200  # the shadow 'trial' rejected r2: it never decides
    assert r1.headers["RateLimit-Policy"] == '"per_second";q=2;w=1, "per_minute";q=3;w=60'
    assert r1.headers["RateLimit"] == '"per_second";r=1;t=1, "per_minute";r=2;t=40'
    assert r3.status_code == 429 and r3.headers["Retry-After"] == "1"
    assert r3.headers["RateLimit"] == '"per_second";r=0;t=1, "per_minute";r=1;t=40'
    assert limiter.stats().shadow_blocked == 2  # r2 and r3: a shadow policy is evaluated on every check
