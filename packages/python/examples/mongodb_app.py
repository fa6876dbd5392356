"""Example: a FastAPI API limited per user on MongoDB (asyncio), so every instance (Python or Node) shares one limit.

Run: MONGODB_URL=mongodb://localhost:27017 packages/python/.venv/bin/python packages/python/examples/mongodb_app.py
(PORT, default 8001; MONGODB_DATABASE, default halt_example). The store creates its collection's TTL index on first
use; `scripts/services.sh start mongodb` prints a throwaway server's address (FerretDB) as HALT_TEST_FERRETDB_URL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from _server import greet, listen
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from halt import LoggingTelemetry, Policy, RateLimiter
from halt.adapters.fastapi import HaltMiddleware
from halt.stores.mongodb import AsyncMongoDBStore

logging.basicConfig(level=logging.INFO, format="%(message)s")  # the log lines on stderr, however started

MONGODB_URL = os.environ.get("MONGODB_URL")
if not MONGODB_URL:
    sys.exit("mongodb_app.py needs MONGODB_URL, like MONGODB_URL=mongodb://localhost:27017")

# Who is who. In a product this is your authentication (a session, a JWT...); here a token per user.
USERS = {"tok_alice": "alice", "tok_bob": "bob"}

store = AsyncMongoDBStore(connection_string=MONGODB_URL, database=os.environ.get("MONGODB_DATABASE", "halt_example"))
limiter = RateLimiter(
    store=store,  # one document per key in collection halt_state
    # 100 requests per minute per user, bursts of 120; the user is request.state.user_id, set below.
    policy=Policy(name="per_user", limit=100, window="1m", burst=120, key_strategy="user"),
    timeout=200,  # ms a check may wait for MongoDB; past it, or while it is down, the failure policy decides:
    on_store_error="open",  # admit (and log store_error=open): the API stays up when its limiter's store does not
    exempt_private_ips=False,  # curl from this machine is limited too (the other examples trust it as a proxy)
    telemetry=LoggingTelemetry(),  # one line per decision
)


class Authenticate:
    """Sets request.state.user_id from the X-Token header; unknown tokens get a 401 before any limit is spent."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            user = USERS.get(Headers(scope=scope).get("x-token", ""))
            if user is None:
                await JSONResponse({"error": "unknown_token"}, 401)(scope, receive, send)
                return
            scope.setdefault("state", {})["user_id"] = user
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await store.aclose()  # it made the MongoDB client: it closes it


app = FastAPI(lifespan=lifespan)
app.add_middleware(HaltMiddleware, limiter=limiter)
app.add_middleware(Authenticate)  # added last, so it runs first


@app.get("/api/hello")
async def hello(request: Request) -> dict[str, str]:
    return {"hello": request.state.user_id}


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    return "ok"


def main() -> None:
    sock, url = listen(8001)
    limit = "policy per_user (100/min, burst 120) per user, on MongoDB"
    greet("FastAPI API", url, limit, client="X-Token: tok_alice")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
