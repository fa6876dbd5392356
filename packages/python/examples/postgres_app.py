"""Example: a Flask API limited per API key on PostgreSQL, so every instance (Python or Node) shares one limit per key.

Run: DATABASE_URL=postgresql://localhost/app packages/python/.venv/bin/python packages/python/examples/postgres_app.py
(PORT, default 5001). The store creates its table (halt_state) on first use; `scripts/services.sh start postgres`
prints a throwaway server's address as HALT_TEST_POSTGRES_URL. Set HALT_API_KEY_SECRET, the same on every instance.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Optional

from _server import greet
from flask import Flask, request
from werkzeug.serving import make_server

from halt import LoggingTelemetry, Policy, RateLimiter
from halt.adapters.flask import HaltFlask
from halt.stores.postgres import PostgresStore

logging.basicConfig(level=logging.INFO, format="%(message)s")  # the log lines on stderr, however started

DATABASE_URL = os.environ.get("DATABASE_URL")
if not DATABASE_URL:
    sys.exit("postgres_app.py needs DATABASE_URL, like DATABASE_URL=postgresql://localhost/app")

# The API keys. In a product they live in your database, hashed; Halt only limits requests that got past this check
# (it does not validate keys, so an unchecked invented key would get a fresh limit).
API_KEYS = {"sk_test_alice": "alice", "sk_test_bob": "bob"}

# One row per key in table halt_state; the pool's connections cancel a statement after `timeout` ms.
store = PostgresStore(connection_string=DATABASE_URL, timeout=200)
limiter = RateLimiter(
    store=store,
    # 100 requests per minute per API key, bursts of 120 (the key is read from X-API-Key or Authorization: Bearer).
    policy=Policy(name="per_api_key", limit=100, window="1m", burst=120, key_strategy="api_key"),
    # Keys are stored, logged and measured only as an HMAC: every instance needs the same secret to share a limit.
    api_key_secret=os.environ.get("HALT_API_KEY_SECRET", "example-secret-set-HALT_API_KEY_SECRET"),
    # While PostgreSQL does not answer, each process limits on its own memory, and goes back to it when it does.
    on_store_error="fallback",
    exempt_private_ips=False,  # curl from this machine is limited too (the other examples trust it as a proxy)
    telemetry=LoggingTelemetry(),  # one line per decision, the API key hashed as in the storage key
)

app = Flask(__name__)


@app.before_request
def authenticate() -> Optional[tuple[dict[str, Any], int]]:
    # Registered before Halt, so it runs first: unknown keys never reach the limiter.
    if request.path.startswith("/api/") and request.headers.get("X-API-Key") not in API_KEYS:
        return {"error": "unknown_api_key"}, 401
    return None


HaltFlask(app, limiter=limiter)


@app.get("/api/hello")
def hello() -> dict[str, str]:
    return {"hello": API_KEYS[request.headers["X-API-Key"]]}


@app.get("/health")
def health() -> str:
    return "ok"


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # Halt's line per request is enough
    server = make_server("127.0.0.1", int(os.environ.get("PORT", "5001")), app, threaded=True)
    limit = "policy per_api_key (100/min, burst 120) per API key, on PostgreSQL"
    greet("Flask API", f"http://127.0.0.1:{server.server_port}", limit, client="X-API-Key: sk_test_alice")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C
        server.serve_forever()
    store.close()


if __name__ == "__main__":
    main()
