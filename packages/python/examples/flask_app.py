"""Example: a Flask API limited by Halt (in-memory store, presets.PUBLIC_API), one log line per decision.

Run: packages/python/.venv/bin/python packages/python/examples/flask_app.py   (PORT, default 5000)
On Redis, shared by every process of the API: REDIS_URL=redis://127.0.0.1:6379 (the same environment variable).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets

from _server import greet
from flask import Flask, request
from werkzeug.serving import make_server

from halt import InMemoryStore, LoggingTelemetry, RateLimiter, Store, presets
from halt.adapters.flask import HaltFlask

logging.basicConfig(level=logging.INFO, format="%(message)s")  # the log lines on stderr, however started


def make_store() -> Store:
    """With REDIS_URL, a RedisStore: every process of the API shares one limit per client."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return InMemoryStore()
    import redis

    from halt.stores.redis import RedisStore

    # socket_timeout bounds each check; past it the limiter's failure policy decides (default: fail open).
    return RedisStore(redis.Redis.from_url(url, socket_timeout=0.5))


limiter = RateLimiter(
    store=make_store(),
    policy=presets.PUBLIC_API,  # 100 requests per minute per client, bursts of 120
    # Pretend a reverse proxy runs on this machine: believe X-Forwarded-For from loopback only.
    trusted_proxies=["loopback"],
    # One line per decision (admissions at INFO, rejections at WARNING); req_id from X-Request-Id.
    telemetry=LoggingTelemetry(),
)

app = Flask(__name__)


@app.before_request
def request_id() -> None:
    # A request id, as an app's own code (or the proxy in front) would set it; registered before Halt, so it runs first.
    request.environ.setdefault("HTTP_X_REQUEST_ID", secrets.token_hex(2)[:3])


HaltFlask(app, limiter=limiter)


@app.get("/api/hello")
def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/health")
def health() -> str:
    return "ok"


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # Halt's line per request is enough
    server = make_server("127.0.0.1", int(os.environ.get("PORT", "5000")), app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    greet("Flask API", url)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C
        server.serve_forever()


if __name__ == "__main__":
    main()
