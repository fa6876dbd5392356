"""Differential test: generated traffic through the built TypeScript package and through this SDK, each with
LoggingTelemetry and MetricsTelemetry on one fake clock, gives the very same log lines (quoting of hostile keys, API
keys hashed alike, request ids, near-limit signals) and the same snapshot."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest

from halt import InMemoryStore, LoggingTelemetry, MetricsTelemetry, Policy, RateLimiter
from halt.http.request import BasicRequestView

HERE = Path(__file__).resolve().parent
DIST = HERE.parents[2] / "typescript" / "dist" / "index.js"
T0 = 1_764_592_861_000  # 2025-12-01 12:41:01 UTC

CONFIGS: list[dict[str, Any]] = [
    {"name": "api", "limit": 3, "window": 60},
    {"name": "login", "limit": 2, "window": 60, "block_duration": 300, "algorithm": "fixed_window"},
    {"name": "keys", "limit": 5, "window": 10, "key_strategy": "api_key", "api_key_secret": "k" * 32},
    {"name": "sliding", "limit": 10, "window": 10, "algorithm": "sliding_window", "near_limit": 0.5},
    {"name": "gcra", "limit": 4, "window": 2, "burst": 6, "algorithm": "gcra"},
]
FRAGMENTS = [
    "user:", "ip:", "a", "7", " ", "=", '"', "\\", "\n", "\t", "\x00", "\x7f", "é", "🦄", "\u2028", "\ud800", "-",
]  # fmt: skip


def _steps(n: int, seed: int = 20261201) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    steps = []
    for _ in range(n):
        key: Optional[str] = None
        headers: dict[str, str] = {}
        if rng.random() < 0.3:
            key = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 6)))
        else:
            rid = rng.choice(["8f1", "req-" + str(rng.randint(0, 99)), "x" * 64, "x" * 65, "bad id", ""])
            if rid:
                headers["x-request-id"] = rid
            if rng.random() < 0.6:
                headers["x-api-key"] = rng.choice(["sk_live_1", "sk_live_2", "k é"])
        steps.append(
            {
                "advance": rng.choice([0, 0, 0, 250, 1000, 7000]),
                "cost": rng.choice([None, None, None, 0, 1, 2, 9]),
                "key": key,
                "peer": rng.choice(["203.0.113.7", "198.51.100.2", "127.0.0.1", "2001:db8::1", None]),
                "path": rng.choice(["/api", "/api", "/health"]),
                "headers": headers,
            }
        )
    return steps


def _python(c: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    now = [T0]

    def clock() -> float:
        return now[0]

    lines: list[list[str]] = []

    class Log:
        def info(self, line: str) -> None:
            lines.append(["info", line])

        def warning(self, line: str) -> None:
            lines.append(["warn", line])

    metrics = MetricsTelemetry()
    limiter = RateLimiter(
        policy=Policy(
            name=c["name"],
            limit=c["limit"],
            window=c["window"],
            burst=c.get("burst"),
            algorithm=c.get("algorithm"),
            block_duration=c.get("block_duration"),
            key_strategy=c.get("key_strategy"),
        ),
        store=InMemoryStore(sweep_interval=0),
        clock=clock,
        on_warning=lambda w: None,
        api_key_secret=c.get("api_key_secret"),
        near_limit=c.get("near_limit"),
        telemetry=[LoggingTelemetry(logger=Log(), time_zone="utc", clock=clock), metrics],
    )
    for s in steps:
        now[0] += s["advance"]
        target: Any = s["key"]
        if target is None:
            target = BasicRequestView(ip=s["peer"], path=s["path"], headers=s["headers"])
        limiter.check(target, cost=s["cost"])
    snapshot = metrics.snapshot()
    del snapshot["latency"]
    return {"lines": lines, "snapshot": snapshot}


CAMEL = {"nearLimit": "near_limit", "byReason": "by_reason", "storeErrors": "store_errors", "byPolicy": "by_policy"}


def _snake(x: Any, names: bool = True) -> Any:
    if isinstance(x, dict):
        return {(CAMEL.get(k, k) if names else k): _snake(v, k != "byPolicy" and k != "byReason") for k, v in x.items()}
    return x


def _ids(lines: list[list[str]]) -> list[list[str]]:
    """Made-up request ids are random: one placeholder for them on both sides."""
    return [[level, re.sub(r"req_id=[0-9a-f]{8} ", "req_id=<id> ", line)] for level, line in lines]


def test_node_and_python_log_and_count_the_same_traffic_alike() -> None:
    if shutil.which("node") is None or not DIST.exists():
        if os.environ.get("CI"):
            pytest.fail("node and packages/typescript/dist are needed: scripts/test.sh builds it first")
        pytest.skip("node or packages/typescript/dist (npm run build -w halt) is missing")
    steps = _steps(300)
    payload = json.dumps({"configs": CONFIGS, "steps": steps, "t0": T0})  # ASCII with \\u escapes
    done = subprocess.run(
        ["node", str(HERE / "node_telemetry.mjs"), str(DIST)], input=payload, capture_output=True, text=True, check=True
    )
    node = json.loads(done.stdout)
    for config, theirs in zip(CONFIGS, node):
        ours = _python(config, steps)
        assert _snake(theirs["snapshot"]) == ours["snapshot"], config["name"]
        assert _ids(theirs["lines"]) == _ids(ours["lines"]), config["name"]
    text = json.dumps(node)
    assert "near_limit" in text and "check=limit" in text and "check=exempt" in text and '\\"' in text
    assert "sk_live" not in text
