"""Example: a one-file Django project limited by Halt (in-memory store, presets.PUBLIC_API), one log line per decision.

Halt is configured the Django way: ``settings.HALT`` and ``halt.adapters.django.HaltMiddleware`` in MIDDLEWARE.
Run: packages/python/.venv/bin/python packages/python/examples/django_app.py   (PORT, default 8000)
 (any other arguments go to Django's manage.py: ``django_app.py check``, ``django_app.py runserver 8000``)
On Redis, shared by every process of the API: REDIS_URL=redis://127.0.0.1:6379 (the same environment variable).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
from typing import Callable

import django
from _server import greet
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from halt import InMemoryStore, LoggingTelemetry, Store, presets

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


def request_id(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Gives each request an X-Request-Id, as an app's own middleware (or the proxy in front) would."""

    def middleware(request: HttpRequest) -> HttpResponse:
        request.META.setdefault("HTTP_X_REQUEST_ID", secrets.token_hex(2)[:3])
        return get_response(request)

    return middleware


settings.configure(
    DEBUG=False,
    SECRET_KEY=secrets.token_hex(16),  # this example has no sessions nor forms: any key will do
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[f"{__name__}.request_id", "halt.adapters.django.HaltMiddleware"],
    # RateLimiter options, read once when the middleware loads (a mistake raises HaltConfigError at startup).
    HALT={
        "store": make_store(),
        "policy": presets.PUBLIC_API,  # 100 requests per minute per client, bursts of 120
        # Pretend a reverse proxy runs on this machine: believe X-Forwarded-For from loopback only.
        "trusted_proxies": ["loopback"],
        # One line per decision (admissions at INFO, rejections at WARNING); req_id from X-Request-Id.
        "telemetry": LoggingTelemetry(),
    },
    LOGGING_CONFIG=None,  # logging.basicConfig above
)
django.setup()


def hello(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"hello": "world"})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("api/hello", hello), path("health", health)]


def main() -> None:
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietHandler(WSGIRequestHandler):  # type: ignore[misc]  # Django ships no types
        def log_message(self, format: str, *args: object) -> None:
            pass  # Halt's line per request is enough

    logging.getLogger("django.request").setLevel(logging.ERROR)  # no "Too Many Requests: /api/hello" too
    server = ThreadedWSGIServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), QuietHandler)
    server.set_app(get_wsgi_application())
    greet("Django API", f"http://127.0.0.1:{server.server_port}")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C
        server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    else:
        main()
