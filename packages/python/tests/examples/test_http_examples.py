"""The README's FastAPI, Flask and Django examples serve, limit and log as documented, over real HTTP; on Redis, two
processes of one example share one limit, and so do a Python one and the TypeScript SDK's Express example."""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Union

import httpx
import pytest

from tests.examples.support import TYPESCRIPT, RunningExample, StartExample, server_url

HTTP_EXAMPLES = ["fastapi_app.py", "flask_app.py", "django_app.py"]
BURST = 120  # presets.PUBLIC_API: bursts of 120, then 100 a minute
RATE = 100 / 60
BODY_429 = {
    "error": "rate_limit_exceeded",
    "message": "Too many requests. Please try again later.",
    "retry_after": 1,
}


def _as(ip: str) -> dict[str, str]:
    return {"x-forwarded-for": ip}


def _until_limited(clients: list[httpx.Client], ip: str) -> tuple[int, httpx.Response, float]:
    """Requests from ``ip``, round robin over ``clients``, until a 429: (admitted, the 429, seconds taken)."""
    start = time.monotonic()
    for i in range(3 * BURST):
        r = clients[i % len(clients)].get("/api/hello", headers=_as(ip))
        if r.status_code != 200:
            return i, r, time.monotonic() - start
    raise AssertionError(f"{3 * BURST} requests from {ip} admitted: no limit")


def _assert_limited(admitted: int, last: httpx.Response, seconds: float) -> None:
    # The burst, plus what the bucket refilled while the requests ran (a slow machine takes longer).
    assert BURST <= admitted <= BURST + math.ceil(seconds * RATE), (admitted, seconds)
    assert last.status_code == 429
    assert last.json() == BODY_429
    assert last.headers["retry-after"] == "1"
    assert last.headers["ratelimit-limit"] == "100"
    assert last.headers["ratelimit-remaining"] == "0"


def _decision_lines(example: RunningExample, count: int) -> list[str]:
    lines = example.until(lambda ls: sum(" req_id=" in line for line in ls) >= count)
    return [line for line in lines if " req_id=" in line]


@pytest.mark.parametrize("file", HTTP_EXAMPLES)
def test_headers_429_exempt_health_check_and_one_log_line_per_decision(start_example: StartExample, file: str) -> None:
    example = start_example(file)
    with httpx.Client(base_url=example.url) as http:
        first = http.get("/api/hello", headers=_as("203.0.113.7"))
        assert first.status_code == 200
        assert first.json() == {"hello": "world"}
        assert first.headers["ratelimit-limit"] == "100"
        assert first.headers["ratelimit-remaining"] == "119"
        assert 0 < int(first.headers["ratelimit-reset"]) - time.time() <= 61
        admitted, last, seconds = _until_limited([http], "203.0.113.7")
        _assert_limited(admitted + 1, last, seconds)
        health = http.get("/health")
        assert health.status_code == 200
        assert health.text == "ok"
        assert "ratelimit-limit" not in health.headers

    # One line per decision: the admissions, the 429 and the health check, in order.
    logs = _decision_lines(example, admitted + 3)
    assert len(logs) == admitted + 3, logs
    assert re.fullmatch(r"\d\d:\d\d:\d\d req_id=[0-9a-f]{3} key=ip:203\.0\.113\.7 check=pass remaining=119", logs[0])
    assert re.fullmatch(r"\S+ req_id=[0-9a-f]{3} key=ip:203\.0\.113\.7 check=limit remaining=0 retry_after=1", logs[-2])
    assert re.fullmatch(r"\S+ req_id=[0-9a-f]{3} key=ip:127\.0\.0\.1 check=exempt", logs[-1])


Example = Union[str, Path]  # a file of examples/, or the path of another example
NODE_EXAMPLE = TYPESCRIPT / "examples" / "express-api.mjs"  # the root README's example, on PUBLIC_API too


def _require_node() -> None:
    missing = (
        "node"
        if shutil.which("node") is None
        else "packages/typescript/dist (npm run build -w halt)"
        if not (TYPESCRIPT / "dist" / "adapters" / "express.js").exists()
        else None
    )
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing: scripts/test.sh provides it")
        pytest.skip(f"{missing} is missing")


@pytest.mark.parametrize(
    "files",
    [(f, f) for f in HTTP_EXAMPLES] + [("flask_app.py", NODE_EXAMPLE)],
    ids=["fastapi", "flask", "django", "flask+node-express"],
)
def test_two_processes_share_one_limit_on_redis(start_example: StartExample, files: tuple[Example, Example]) -> None:
    url = server_url("HALT_TEST_REDIS_URL", "redis")
    if files[1] == NODE_EXAMPLE:
        _require_node()
    one, two = (start_example(f, {"REDIS_URL": url}) for f in files)
    ip = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"  # a client no earlier run has left in Redis
    with httpx.Client(base_url=one.url) as a, httpx.Client(base_url=two.url) as b:
        # Alternating between the processes: one bucket in Redis, not one each (that would admit twice the burst).
        admitted, last, seconds = _until_limited([a, b], ip)
        _assert_limited(admitted, last, seconds)
    assert _decision_lines(one, 1)[0].endswith(f" key=ip:{ip} check=pass remaining=119")
    assert _decision_lines(two, 1)[0].endswith(f" key=ip:{ip} check=pass remaining=118")
