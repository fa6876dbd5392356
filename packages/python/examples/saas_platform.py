"""Example: a SaaS API on Halt (FastAPI): plans from a user table, a monthly quota per plan, penalties for abusers,
one log line per decision and Prometheus metrics on /metrics.

Run: packages/python/.venv/bin/python packages/python/examples/saas_platform.py   (PORT, default 8002)
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import uvicorn
from _server import listen
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from halt import (
    InMemoryStore,
    LoggingTelemetry,
    PenaltyConfig,
    PenaltyManager,
    Policy,
    Quota,
    QuotaManager,
    RateLimiter,
    define_plans,
)
from halt.adapters.fastapi import HaltMiddleware
from halt.http.quota import QuotaOption
from halt.telemetry.prometheus import PrometheusTelemetry

logging.basicConfig(level=logging.INFO, format="%(message)s")  # the log lines on stderr, however started

# The user table. In a product this is your database (cache the lookup: it runs on every request).
USERS = {
    "sk_test_alice": {"id": "alice", "plan": "free"},
    "sk_test_carol": {"id": "carol", "plan": "trial"},
    "sk_test_bob": {"id": "bob", "plan": "pro"},
}

# Plans: a rate limit each (per user: key_strategy 'user' reads request.user's id), and a monthly quota (resets on
# the 1st, 00:00 UTC).
plans = define_plans(
    {
        "free": {
            "policy": Policy(name="plan_free", limit=5, window="1m", key_strategy="user"),
            "quota": Quota(name="calls_free", limit=1_000, period="monthly"),
        },
        "trial": {
            "policy": Policy(name="plan_trial", limit=20, window="1m", key_strategy="user"),
            "quota": Quota(name="calls_trial", limit=3, period="monthly"),
        },
        "pro": {
            "policy": Policy(name="plan_pro", limit=100, window="1m", key_strategy="user"),
            "quota": Quota(name="calls_pro", limit=100_000, period="monthly"),
        },
    },
    default_plan="free",
)


def plan_of(req: Any) -> Optional[str]:
    user = req.user
    return None if user is None else str(user["plan"])


# One store for limits, quotas and penalties. One Redis instead (AsyncRedisStore), and every instance shares them.
store = InMemoryStore()
# One log line per decision, and Prometheus metrics (served on /metrics below).
telemetry = [LoggingTelemetry(), PrometheusTelemetry()]
limiter = RateLimiter(
    store=store,
    policy=plans.resolver(plan_of),
    default_policy=plans.policy("free"),
    # An abuser: every rejection adds 1 to the user's abuse score (decaying 3 points an hour); at 3, their limit
    # halves for 1 minute, then 2, 4, ... minutes for repeat offences.
    penalties=PenaltyManager(PenaltyConfig(threshold=3, duration="1m", multiplier=0.5, decay_rate=3), store=store),
    telemetry=telemetry,
    exempt_private_ips=False,  # curl from this machine is limited too
)
# Quota decisions go to the same sinks: an exhausted quota is a line and a halt_decisions_total{reason="quota"}.
quotas = QuotaManager(store, telemetry=telemetry)


class Authenticate:
    """Sets request.user from the X-API-Key header; an unknown key gets a 401 before any limit is spent."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            user = USERS.get(Headers(scope=scope).get("x-api-key", ""))
            if user is None:
                await JSONResponse({"error": "unknown_api_key"}, 401)(scope, receive, send)
                return
            scope["user"] = user
        await self.app(scope, receive, send)


# The API, mounted on /api: authentication, then the plan's rate limit, then its monthly quota (429
# "quota_exceeded" with the reset time when used up). Middlewares run last added first.
api = FastAPI()
api.add_middleware(HaltMiddleware, limiter=limiter, quota=QuotaOption(quotas, plans.quota_resolver(plan_of)))
api.add_middleware(Authenticate)


@api.get("/report")
async def report(request: Request) -> dict[str, str]:
    user = request.scope["user"]
    return {"user": user["id"], "plan": user["plan"], "report": "ok"}


app = FastAPI()
app.mount("/api", api)


@app.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def main() -> None:
    sock, url = listen(8002)
    print(
        f"SaaS API on {url}, limited by Halt: plans free (5/min), trial (20/min, 3 calls a month), pro (100/min).\n"
        "Try, in another terminal:\n"
        f"  curl -i -H 'X-API-Key: sk_test_bob' {url}/api/report        # pro: 200, RateLimit-Limit: 100\n"
        "  for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' -H 'X-API-Key: sk_test_alice' "
        f"{url}/api/report; done; echo\n"
        "                                       # free: 5 x 200, then 429; after 3 rejections, a penalty\n"
        f"  for i in $(seq 4); do curl -s -H 'X-API-Key: sk_test_carol' {url}/api/report; echo; done\n"
        "                                       # trial: the 4th call of the month is quota_exceeded\n"
        f"  curl -s {url}/metrics | grep halt_                                 # Prometheus metrics\n"
        "Ctrl-C to stop.",
        flush=True,
    )
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
