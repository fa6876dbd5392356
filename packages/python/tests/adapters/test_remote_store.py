"""The adapters over remote stores: FastAPI on an asyncio Redis, Flask on a sync one, the 503 of a store down."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
from fastapi import FastAPI
from flask import Flask
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from halt.adapters.fastapi import HaltMiddleware
from halt.adapters.flask import HaltFlask
from halt.core.limiter import RateLimiter
from halt.core.types import Policy
from halt.stores.redis import AsyncRedisStore, RedisStore
from tests.support import redis_url

UNAVAILABLE = (
    '{"error":"rate_limiter_unavailable","message":"Rate limiting is temporarily unavailable. '
    'Please try again later.","retry_after":1}'
)


def _url() -> str:
    url = redis_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("HALT_TEST_REDIS_URL is not set: scripts/test.sh starts the servers")
        pytest.skip('HALT_TEST_REDIS_URL not set (run: eval "$(scripts/services.sh start redis)")')
    return url


def _closed_port() -> int:
    """A loopback port nothing listens on: a Redis that is down."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _fastapi(limiter: RateLimiter) -> FastAPI:
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter)

    @app.get("/api")
    async def api() -> str:
        return "ok"

    return app


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 1)), base_url="http://t")


async def test_fastapi_on_an_asyncio_redis() -> None:
    client = redis.asyncio.Redis.from_url(_url())
    store = AsyncRedisStore(client, prefix=f"halt-test-{uuid.uuid4().hex[:8]}:")
    limiter = RateLimiter(policy=Policy(name="api", limit=2, window=60), store=store)
    try:
        async with _client(_fastapi(limiter)) as c:
            codes = [(await c.get("/api")).status_code for _ in range(3)]
            health = await c.get("/health")
    finally:
        await client.aclose()
    assert codes == [200, 200, 429]
    assert health.status_code == 404 and "ratelimit-limit" not in health.headers  # exempt: never reached Redis


async def test_fastapi_store_down_failing_closed_is_a_503() -> None:
    client = redis.asyncio.Redis(
        host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.5, retry=AsyncRetry(NoBackoff(), 0)
    )
    limiter = RateLimiter(
        policy=Policy(name="api", limit=2, window=60), store=AsyncRedisStore(client), on_store_error="closed"
    )
    try:
        async with _client(_fastapi(limiter)) as c:
            r = await c.get("/api")
    finally:
        await client.aclose()
    assert r.status_code == 503 and r.text == UNAVAILABLE
    assert r.headers["retry-after"] == "1" and r.headers["ratelimit-remaining"] == "0"


def test_flask_on_a_sync_redis_and_down() -> None:
    up = redis.Redis.from_url(_url())
    limiter = RateLimiter(
        policy=Policy(name="api", limit=1, window=60), store=RedisStore(up, prefix=f"halt-test-{uuid.uuid4().hex[:8]}:")
    )
    down = redis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    closed = RateLimiter(policy=Policy(name="api", limit=1, window=60), store=RedisStore(down), on_store_error="closed")
    opened = RateLimiter(policy=Policy(name="api", limit=1, window=60), store=RedisStore(down), on_store_error="open")
    results: dict[str, list[int]] = {}
    bodies: dict[str, str] = {}
    for name, lim in (("up", limiter), ("closed", closed), ("open", opened)):
        app = Flask(name)
        HaltFlask(app, limiter=lim)
        app.add_url_rule("/api", name, lambda: "ok")
        c = app.test_client()
        rs = [c.get("/api", environ_base={"REMOTE_ADDR": "203.0.113.7"}) for _ in range(2)]
        results[name] = [r.status_code for r in rs]
        bodies[name] = rs[-1].get_data(as_text=True)
    up.close()
    down.close()
    assert results == {"up": [200, 429], "closed": [503, 503], "open": [200, 200]}
    assert bodies["closed"] == UNAVAILABLE
