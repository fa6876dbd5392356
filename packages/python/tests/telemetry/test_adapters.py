"""Telemetry through the three adapters (FastAPI, Flask, Django, sync and async): the request id in the log line,
exempt requests reported, and a real API-key request that leaves no raw key in events, logs or metrics."""

from __future__ import annotations

from typing import Any

import django
import httpx
from django.conf import settings

if not settings.configured:  # the same settings as tests/adapters/test_django.py, whichever module comes first
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.adapters.test_django",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from fastapi import FastAPI
from flask import Flask

from halt import LoggingTelemetry, MetricsTelemetry, Policy, RateLimiter
from halt.adapters.django import create_halt_middleware
from halt.adapters.fastapi import HaltMiddleware
from halt.adapters.flask import HaltFlask
from tests.support import FakeClock
from tests.telemetry.support import Recorder

RAW_KEY = "sk_live_51HxTelemetryNeverLogs"
PEER = "203.0.113.7"


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)

    def warning(self, line: str) -> None:
        self.lines.append(line)


def make_limiter() -> tuple[RateLimiter, Lines, Recorder, MetricsTelemetry]:
    log, rec, metrics = Lines(), Recorder(), MetricsTelemetry()
    limiter = RateLimiter(
        policy=Policy(name="api", limit=1, window=60, key_strategy="api_key"),
        clock=FakeClock(),
        telemetry=[LoggingTelemetry(logger=log, time_zone="utc", clock=lambda: 0), rec, metrics],
        on_warning=lambda w: None,
    )
    return limiter, log, rec, metrics


def check(log: Lines, rec: Recorder, metrics: MetricsTelemetry, statuses: list[int]) -> None:
    """Two API-key requests (pass, then limit) with request ids, then a health check (exempt)."""
    assert statuses == [200, 429, 200]
    assert log.lines[0].startswith("00:00:00 req_id=rq-1 key=apikey:")
    assert log.lines[0].endswith(" check=pass remaining=0")
    assert " near_limit policy=api " in log.lines[1] and "req_id=rq-1 " in log.lines[1]
    assert log.lines[2].startswith("00:00:00 req_id=rq-2 key=apikey:") and " check=limit " in log.lines[2]
    assert log.lines[3].startswith("00:00:00 req_id=") and log.lines[3].endswith(f" key=ip:{PEER} check=exempt")
    events = [repr(e) for _, e in rec.events]
    snapshot = repr(metrics.snapshot())
    for text in [*log.lines, *events, snapshot]:
        assert RAW_KEY not in text
    assert all(not hasattr(e, "request") for _, e in rec.events)


REQUESTS = [
    ("/api", {"X-API-Key": RAW_KEY, "X-Request-Id": "rq-1"}),
    ("/api", {"Authorization": f"Bearer {RAW_KEY}", "X-Request-Id": "rq-2"}),
    ("/health", {"X-Request-Id": "not a valid id"}),
]


def requests_of(send: Any) -> list[int]:
    return [send(path, h) for path, h in REQUESTS]


async def test_fastapi() -> None:
    limiter, log, rec, metrics = make_limiter()
    app = FastAPI()
    app.add_middleware(HaltMiddleware, limiter=limiter)

    @app.get("/api")
    async def api() -> str:
        return "ok"

    @app.get("/health")
    async def health() -> str:
        return "up"

    transport = httpx.ASGITransport(app=app, client=(PEER, 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        statuses = [(await client.get(path, headers=h)).status_code for path, h in REQUESTS]
    check(log, rec, metrics, statuses)


def test_flask() -> None:
    limiter, log, rec, metrics = make_limiter()
    app = Flask(__name__)
    HaltFlask(app, limiter=limiter)
    app.add_url_rule("/api", "api", lambda: "ok")
    app.add_url_rule("/health", "health", lambda: "up")
    client = app.test_client()
    check(
        log,
        rec,
        metrics,
        requests_of(lambda path, h: client.get(path, headers=h, environ_base={"REMOTE_ADDR": PEER}).status_code),
    )


def django_send(middleware: Any) -> Any:
    factory = RequestFactory()

    def send(path: str, headers: dict[str, str]) -> Any:
        meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        return middleware(factory.get(path, REMOTE_ADDR=PEER, **meta))

    return send


def test_django_sync() -> None:
    limiter, log, rec, metrics = make_limiter()
    middleware = create_halt_middleware(limiter)(lambda request: HttpResponse("ok"))
    send = django_send(middleware)
    check(log, rec, metrics, requests_of(lambda path, h: send(path, h).status_code))


async def test_django_async() -> None:
    limiter, log, rec, metrics = make_limiter()

    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    middleware = create_halt_middleware(limiter)(view)
    send = django_send(middleware)
    statuses = [(await send(path, h)).status_code for path, h in REQUESTS]
    check(log, rec, metrics, statuses)
