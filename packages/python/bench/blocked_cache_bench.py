"""The Redis blocked-key cache under abusive clients: script calls per 1000 checks and time per check, with and without.

Run (with a Redis: ``eval "$(scripts/services.sh start redis)"``):
``packages/python/.venv/bin/python packages/python/bench/blocked_cache_bench.py [--checks N] [--json]``

Scenarios, each on a fresh prefix, a fake clock moving 10 ms per check (1000 checks = 10 s):

- ``abuser``: one client far over ``10/min`` (fixed window): after 10 admissions every check is a ``limit``
  rejection, answered from the cache until the window rolls;
- ``cooldown``: one client over ``5/min`` with ``block_duration=60``: the ``limit`` rejection goes to Redis (it starts
  the cooldown), the cooldown's rejections come from the cache;
- ``mixed``: 100 well-behaved clients (one check in six, in turn) among 10 abusers (the other five): only the abusers'
  checks can be saved.

Wall time per check on a loopback Redis (the machine may be shared: compare the two columns, not absolutes).
A benchmark, not a test: it prints figures and never fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # halt from this checkout

import redis

from halt import Policy, RateLimiter
from halt.stores.redis import RedisStore

T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def abuser(n: int) -> list[str]:
    return ["abuser"] * n


def mixed(n: int) -> list[str]:
    """One check in six from one of 100 good clients (in turn), five from one of 10 abusers."""
    return [f"abuser:{i % 10}" if i % 6 else f"good:{(i // 6) % 100}" for i in range(n)]


SCENARIOS: dict[str, tuple[Policy, Callable[[int], list[str]]]] = {
    "abuser": (Policy(name="bench_abuse", limit=10, window=60, algorithm="fixed_window"), abuser),
    "cooldown": (Policy(name="bench_cool", limit=5, window=60, algorithm="fixed_window", block_duration=60), abuser),
    "mixed": (Policy(name="bench_mixed", limit=10, window=60, algorithm="token_bucket"), mixed),
}


def run(client: Any, policy: Policy, keys: list[str], cache: bool) -> dict[str, float]:
    store = RedisStore(client, prefix=f"halt-bench-{uuid.uuid4().hex[:8]}:", blocked_key_cache=cache)
    clock = Clock()
    limiter = RateLimiter(policy=policy, store=store, clock=clock)
    limiter.peek("warm")  # load the script before timing
    calls0 = store.counters.calls
    admitted = 0
    t0 = time.perf_counter()
    for k in keys:
        clock.now += 10
        admitted += limiter.check(k).allowed
    elapsed = time.perf_counter() - t0
    calls = store.counters.calls - calls0
    store.clear()
    return {
        "admitted": admitted,
        "calls_per_1000": calls * 1000 / len(keys),
        "cache_hits": store.counters.cache_hits,
        "us_per_check": elapsed / len(keys) * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checks", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    url = os.environ.get("HALT_TEST_REDIS_URL")
    if url is None:
        sys.exit('HALT_TEST_REDIS_URL is not set: eval "$(scripts/services.sh start redis)"')
    client = redis.Redis.from_url(url)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, (policy, keys_of) in SCENARIOS.items():
        keys = keys_of(args.checks)
        results[name] = {"without": run(client, policy, keys, False), "with": run(client, policy, keys, True)}
    client.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.checks} checks per scenario, 10 ms of fake time apart; script calls per 1000 checks; wall µs/check")
    print(f"{'scenario':<10} {'admitted':>9} {'calls w/o':>10} {'calls with':>11} {'µs w/o':>8} {'µs with':>8}")
    for name, r in results.items():
        w, c = r["without"], r["with"]
        same = "" if w["admitted"] == c["admitted"] else "  (admissions differ!)"
        print(
            f"{name:<10} {w['admitted']:>9.0f} {w['calls_per_1000']:>10.0f} {c['calls_per_1000']:>11.0f} "
            f"{w['us_per_check']:>8.1f} {c['us_per_check']:>8.1f}{same}"
        )


if __name__ == "__main__":
    main()
