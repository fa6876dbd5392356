"""Per-request overhead of Halt in FastAPI and Flask, side by side with slowapi and Flask-Limiter, in one run.

Each app is driven in process (an ASGI call per request on one event loop; a WSGI call per request), so the
figures are the framework's and the limiter's CPU time without sockets or a load generator in the way. Every
contender runs in every round, in a rotating order; a warm-up round is discarded; medians of the per-request
time are reported, and a limiter's overhead is its median minus the bare app's. Time is this thread's CPU time
(``time.thread_time_ns``), not the wall clock, so other processes on a shared machine do not inflate it.

    python packages/python/bench/http_bench.py [--rounds 7] [--requests 4000] [--out bench/results/python-http.md]

Every limiter uses its in-memory storage, keys by client address, sends rate-limit headers, and admits every
request (limit 10^9 per minute): the cost measured is the limiter's check, not a 429.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import time
from typing import Any, Callable

PEER = "203.0.113.7"
BIG = 1_000_000_000


# ---- FastAPI -----------------------------------------------------------------------------------------------


def fastapi_apps() -> dict[str, Any]:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    def base() -> Any:
        app = FastAPI()

        @app.get("/api")
        async def api() -> PlainTextResponse:
            return PlainTextResponse("hello")

        return app

    apps: dict[str, Any] = {"fastapi bare": base()}

    # The floor for any limiter: a pure ASGI middleware that only sets the same three headers.
    class HeadersOnly:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def send2(m: Any) -> None:
                if m["type"] == "http.response.start":
                    m = {
                        **m,
                        "headers": [
                            *m.get("headers", ()),
                            (b"ratelimit-limit", b"1000000000"),
                            (b"ratelimit-remaining", b"999999999"),
                            (b"ratelimit-reset", b"1764081723"),
                        ],
                    }
                await send(m)

            await self.app(scope, receive, send2)

    a = base()
    a.add_middleware(HeadersOnly)
    apps["fastapi + headers-only middleware"] = a

    from halt import RateLimiter
    from halt.adapters.fastapi import HaltMiddleware
    from halt.core.types import Policy

    a = base()
    a.add_middleware(
        HaltMiddleware,
        limiter=RateLimiter(policy=Policy(name="bench", limit=BIG, window=60), exempt_private_ips=False),
    )
    apps["fastapi + halt"] = a

    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIMiddleware
    from slowapi.util import get_remote_address

    a = base()
    a.state.limiter = Limiter(key_func=get_remote_address, default_limits=[f"{BIG}/minute"], headers_enabled=True)
    a.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    a.add_middleware(SlowAPIMiddleware)
    apps["fastapi + slowapi"] = a

    from slowapi.middleware import SlowAPIASGIMiddleware

    a = base()
    a.state.limiter = Limiter(key_func=get_remote_address, default_limits=[f"{BIG}/minute"], headers_enabled=True)
    a.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    a.add_middleware(SlowAPIASGIMiddleware)
    apps["fastapi + slowapi (ASGI middleware)"] = a
    return apps


def asgi_runner(app: Any) -> Callable[[int], float]:
    template = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api",
        "raw_path": b"/api",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
        "client": (PEER, 4711),
        "server": ("bench", 80),
    }
    request = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []

    async def receive() -> Any:
        return request

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    loop = asyncio.new_event_loop()

    async def many(n: int) -> float:
        t0 = time.thread_time_ns()
        for _ in range(n):
            await app({**template, "headers": list(template["headers"])}, receive, send)
        return (time.thread_time_ns() - t0) / n

    def run(n: int) -> float:
        statuses.clear()
        ns = loop.run_until_complete(many(n))
        if any(s != 200 for s in statuses):
            raise SystemExit(f"unexpected statuses {set(statuses)}")
        return ns

    return run


# ---- Flask -------------------------------------------------------------------------------------------------


def flask_apps() -> dict[str, Any]:
    from flask import Flask, Response

    def base() -> Flask:
        app = Flask("bench")

        @app.get("/api")
        def api() -> str:
            return "hello"

        return app

    apps: dict[str, Any] = {"flask bare": base()}

    a = base()

    @a.after_request
    def headers_only(response: Response) -> Response:
        response.headers["RateLimit-Limit"] = "1000000000"
        response.headers["RateLimit-Remaining"] = "999999999"
        response.headers["RateLimit-Reset"] = "1764081723"
        return response

    apps["flask + headers-only after_request"] = a

    from halt import RateLimiter
    from halt.adapters.flask import HaltFlask
    from halt.core.types import Policy

    a = base()
    HaltFlask(a, limiter=RateLimiter(policy=Policy(name="bench", limit=BIG, window=60), exempt_private_ips=False))
    apps["flask + halt"] = a

    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    a = base()
    Limiter(
        get_remote_address,
        app=a,
        default_limits=[f"{BIG} per minute"],
        storage_uri="memory://",
        headers_enabled=True,
    )
    apps["flask + Flask-Limiter"] = a
    return apps


def wsgi_runner(app: Any) -> Callable[[int], float]:
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path="/api", environ_base={"REMOTE_ADDR": PEER}).get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    def run(n: int) -> float:
        statuses.clear()
        t0 = time.thread_time_ns()
        for _ in range(n):
            body = app(dict(environ), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        ns = (time.thread_time_ns() - t0) / n
        if any(not s.startswith("200") for s in statuses):
            raise SystemExit(f"unexpected statuses {set(statuses)}")
        return ns

    return run


# ---- the run -----------------------------------------------------------------------------------------------


def measure(runners: dict[str, Callable[[int], float]], rounds: int, n: int) -> dict[str, list[float]]:
    names = list(runners)
    for name in names:  # warm-up round, discarded
        runners[name](max(200, n // 10))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()
            samples[name].append(runners[name](n))
    return samples


def us(ns: float) -> str:
    return f"{ns / 1000:.1f} µs"


def table(framework: str, samples: dict[str, list[float]], peer: str) -> tuple[list[str], dict[str, float]]:
    med = {name: statistics.median(xs) for name, xs in samples.items()}
    bare = med[f"{framework} bare"]
    rows = [
        "| app | CPU per request (median) | runs (min-max) | requests/s of one core | overhead vs bare |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, m in med.items():
        xs = samples[name]
        over = "" if name.endswith(" bare") else us(m - bare)
        rows.append(f"| {name} | {us(m)} | {us(min(xs))}-{us(max(xs))} | {1e9 / m:,.0f} | {over} |")
    halt = med[f"{framework} + halt"] - bare
    # The peer at its best: the fastest of its variants.
    other = min(m for name, m in med.items() if name.startswith(f"{framework} + {peer}")) - bare
    return rows, {"halt": halt, "peer": other}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--out", default=None, help="also write the report to this file")
    args = ap.parse_args()

    versions = (
        f"Python {platform.python_version()}, FastAPI {_version('fastapi')}, Flask {_version('flask')}, "
        f"slowapi {_version('slowapi')}, Flask-Limiter {_version('flask-limiter')}, limits {_version('limits')}"
    )
    lines = [
        "# Python HTTP overhead (packages/python/bench/http_bench.py)",
        "",
        f"{versions}; {args.rounds} alternating rounds of {args.requests} requests per app, in process; medians.",
        "",
    ]
    targets: list[str] = []
    for framework, apps, runner, peer in (
        ("fastapi", fastapi_apps(), asgi_runner, "slowapi"),
        ("flask", flask_apps(), wsgi_runner, "Flask-Limiter"),
    ):
        samples = measure({name: runner(app) for name, app in apps.items()}, args.rounds, args.requests)
        rows, over = table(framework, samples, peer)
        lines += [f"## {framework}", "", *rows, ""]
        ratio = over["peer"] / over["halt"] if over["halt"] > 0 else float("inf")
        met = "yes" if over["halt"] < over["peer"] else "no"
        targets.append(
            f"| {framework}: Halt's overhead below {peer}'s (its fastest setup) | {met} | "
            f"{us(over['halt'])} vs {us(over['peer'])}: "
            f"{ratio:.2f}x less |"
        )
    lines += ["| target | met | measured |", "| --- | --- | --- |", *targets, ""]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(report)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
