"""Example: a FastAPI API limited by Halt (in-memory store, presets.PUBLIC_API), one log line per decision.

Run: packages/python/.venv/bin/python packages/python/examples/fastapi_app.py   (PORT, default 8000)
 or: cd packages/python/examples && ../.venv/bin/uvicorn fastapi_app:app --port 8000
On Redis, shared by every process of the API: REDIS_URL=redis://127.0.0.1:6379 (the same environment variable).
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

import uvicorn
from _server import greet, listen
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from halt import InMemoryStore, LoggingTelemetry, RateLimiter, Store, presets
from halt.adapters.fastapi import HaltMiddleware
from halt.core.store import AsyncStore

logging.basicConfig(level=logging.INFO, format="%(message)s")  # the log lines on stderr, however started


def make_store() -> Store | AsyncStore:
    """With REDIS_URL, an AsyncRedisStore: every process of the API shares one limit per client."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return InMemoryStore()
    import redis.asyncio

    from halt.stores.redis import AsyncRedisStore

    return AsyncRedisStore(redis.asyncio.Redis.from_url(url))


limiter = RateLimiter(
    store=make_store(),
    policy=presets.PUBLIC_API,  # 100 requests per minute per client, bursts of 120
    # Pretend a reverse proxy runs on this machine: believe X-Forwarded-For from loopback only.
    trusted_proxies=["loopback"],
    # One line per decision (admissions at INFO, rejections at WARNING); req_id from X-Request-Id.
    telemetry=LoggingTelemetry(),
)


class RequestId:
    """Gives each request an X-Request-Id, as an app's own middleware (or the proxy in front) would."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and all(k != b"x-request-id" for k, _ in scope["headers"]):
            scope = {**scope, "headers": [*scope["headers"], (b"x-request-id", secrets.token_hex(2)[:3].encode())]}
        await self.app(scope, receive, send)


app = FastAPI()
app.add_middleware(HaltMiddleware, limiter=limiter)
app.add_middleware(RequestId)  # added last, so it runs first


@app.get("/api/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    return "ok"


def main() -> None:
    sock, url = listen(8000)
    greet("FastAPI API", url)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
