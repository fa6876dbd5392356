"""halt.adapters.flask with the real Flask (test client and a real werkzeug server): 429, headers, stacked limits."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from flask import Flask, g
from werkzeug.serving import make_server

from halt.adapters.flask import HaltFlask, limit
from halt.core.errors import HaltConfigError
from halt.core.types import Policy
from tests.http.support import T0, http_limiter

PEER = {"REMOTE_ADDR": "203.0.113.7"}
BODY = '{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.","retry_after":30}'


def make_app(**options: Any) -> Flask:
    limiter, _, _ = http_limiter(Policy(name="api", limit=2, window=60), **options)
    login_limiter, _, _ = http_limiter(Policy(name="login", limit=1, window=60))
    app = Flask(__name__)
    HaltFlask(app, limiter=limiter)

    @app.get("/api/items")
    def items() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/health")
    def health() -> str:
        return "up"

    @app.post("/login")
    @limit(login_limiter)
    def login() -> str:
        return "welcome"

    return app


def test_admits_with_headers_then_rejects_with_the_halt_body() -> None:
    c = make_app().test_client()
    r1 = c.get("/api/items", environ_base=PEER)
    r2 = c.get("/api/items", environ_base=PEER)
    r3 = c.get("/api/items", environ_base=PEER)
    assert r1.status_code == 200 and r1.headers["RateLimit-Limit"] == "2"
    assert r1.headers["RateLimit-Remaining"] == "1" and r1.headers["RateLimit-Reset"] == str(T0 // 1000 + 30)
    assert r2.headers["RateLimit-Remaining"] == "0"
    assert r3.status_code == 429 and r3.headers["Retry-After"] == "30"
    assert r3.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r3.get_data(as_text=True) == BODY


def test_exempt_requests_get_no_headers() -> None:
    c = make_app().test_client()
    for _ in range(4):
        r = c.get("/health", environ_base=PEER)
        assert r.status_code == 200 and "RateLimit-Limit" not in r.headers
        r = c.get("/api/items", environ_base={"REMOTE_ADDR": "192.168.1.5"})
        assert r.status_code == 200 and "RateLimit-Limit" not in r.headers


def test_view_limit_stacks_with_the_app_limit() -> None:
    c = make_app().test_client()
    r1 = c.post("/login", environ_base=PEER)
    r2 = c.post("/login", environ_base=PEER)
    assert r1.status_code == 200 and r1.headers["RateLimit-Limit"] == "1"  # the stricter one is described
    assert r1.headers.getlist("RateLimit-Remaining") == ["0"]
    assert r2.status_code == 429 and r2.headers["RateLimit-Limit"] == "1" and r2.headers["Retry-After"] == "60"
    # the app limit counted both logins: one unit left
    assert c.get("/api/items", environ_base=PEER).status_code == 429


def test_trusted_proxies_and_user_strategy() -> None:
    limiter, _, _ = http_limiter(
        Policy(name="u", limit=1, window=60, key_strategy="composite"), trusted_proxies=["10.0.0.0/8"]
    )
    app = Flask(__name__)
    HaltFlask(app, limiter=limiter)

    @app.before_request
    def auth() -> None:
        g.user_id = "alice"

    @app.get("/me")
    def me() -> str:
        return "me"

    c = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    assert c.get("/me", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    assert c.get("/me", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 429
    assert c.get("/me", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200


def test_configuration_errors() -> None:
    with pytest.raises(HaltConfigError) as e:
        HaltFlask(Flask(__name__))
    assert e.value.code == "HALT_INVALID_LIMITER"
    limiter, _, _ = http_limiter()
    with pytest.raises(HaltConfigError) as e:
        limit(limiter, headers="x")
    assert e.value.code == "HALT_INVALID_HEADER_FORMAT"


def test_real_server_on_loopback() -> None:
    """A real werkzeug server: the peer is 127.0.0.1, trusted here, so X-Forwarded-For names the client."""
    limiter, _, _ = http_limiter(Policy(name="api", limit=1, window=60), trusted_proxies=["loopback"])
    app = Flask(__name__)
    HaltFlask(app, limiter=limiter)

    @app.get("/api")
    def api() -> str:
        return "ok"

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base) as c:
            first = c.get("/api", headers={"x-forwarded-for": "203.0.113.9"})
            second = c.get("/api", headers={"x-forwarded-for": "203.0.113.9"})
            odd = c.get("/%61pi", headers={"x-forwarded-for": "203.0.113.10"})
    finally:
        server.shutdown()
        thread.join()
    assert first.status_code == 200 and first.headers["ratelimit-remaining"] == "0"
    assert second.status_code == 429 and second.text.startswith('{"error":"rate_limit_exceeded"')
    assert odd.status_code == 200 and odd.headers["ratelimit-remaining"] == "0"


def test_on_limited_returns_your_rejection_with_the_headers() -> None:
    limiter, _, _ = http_limiter(Policy(name="api", limit=1, window=60))
    app = Flask(__name__)
    HaltFlask(app, limiter=limiter, on_limited=lambda d: ({"slow": "down", "retry": d.retry_after}, 429))
    app.add_url_rule("/x", "x", lambda: "x")
    c = app.test_client()
    c.get("/x", environ_base=PEER)
    r = c.get("/x", environ_base=PEER)
    assert r.status_code == 429 and r.get_json() == {"slow": "down", "retry": 60}
    assert r.headers["Retry-After"] == "60" and r.headers["RateLimit-Limit"] == "1"
    with pytest.raises(HaltConfigError) as e:
        HaltFlask(Flask(__name__), limiter=limiter, on_limited=429)  # type: ignore[arg-type]
    assert e.value.code == "HALT_INVALID_CALLBACK"


def test_an_asyncio_store_is_refused_at_configuration() -> None:
    import redis.asyncio

    from halt.core.limiter import RateLimiter
    from halt.stores.redis import AsyncRedisStore

    limiter = RateLimiter(policy=Policy(limit=1, window=60), store=AsyncRedisStore(redis.asyncio.Redis()))
    for make in (lambda: HaltFlask(Flask(__name__), limiter=limiter), lambda: limit(limiter)):
        with pytest.raises(HaltConfigError) as e:
            make()
        assert e.value.code == "HALT_ASYNC_STORE"


def test_a_limit_set_sends_the_binding_policys_standard_headers() -> None:
    limiter, _, _ = http_limiter(
        [
            Policy(name="per_second", limit=5, window=1, algorithm="fixed_window"),
            Policy(name="per_minute", limit=2, window=60, algorithm="fixed_window"),
        ]
    )
    app = Flask(__name__)
    HaltFlask(app, limiter=limiter)

    @app.get("/api/items")
    def items() -> dict[str, bool]:
        return {"ok": True}

    c = app.test_client()
    r1 = c.get("/api/items", environ_base=PEER)
    c.get("/api/items", environ_base=PEER)
    r3 = c.get("/api/items", environ_base=PEER)
    assert r1.headers["RateLimit-Limit"] == "2" and r1.headers["RateLimit-Remaining"] == "1"
    assert r3.status_code == 429 and r3.headers["Retry-After"] == "40"  # per_minute binds: its window ends in 40 s
