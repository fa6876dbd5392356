"""In-process checks per second: halt (InMemoryStore) against ``limits`` (its MemoryStorage), side by side.

Run: ``packages/python/.venv/bin/python packages/python/bench/core_bench.py [--rounds N] [--json]``

Each round times every contender on the same work, in alternating order; the table reports medians and ratios.
One hot key (nothing rejected: the limit is far above the checks), and 100k distinct keys (first touch).
Time is this thread's CPU time (``time.thread_time``): on a shared machine wall time mostly measures the others.
A benchmark, not a test: it prints figures and whether the targets are met, and never fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # halt from this checkout

import limits
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from halt import InMemoryStore, Policy, RateLimiter

HOT = 200_000
KEYS = 100_000
BIG = 10**12  # a limit no run reaches


def halt_contender(algorithm: str) -> Callable[[list[str]], None]:
    def make() -> Callable[[str], object]:
        limiter = RateLimiter(
            policy=Policy(name="bench", limit=BIG, window=3600, algorithm=algorithm),
            store=InMemoryStore(sweep_interval=0),
        )
        return limiter.check

    return lambda keys: _run(make(), keys)


def limits_contender(strategy: type) -> Callable[[list[str]], None]:
    def make() -> Callable[[str], object]:
        s = strategy(MemoryStorage())
        item = limits.RateLimitItemPerHour(BIG)
        hit = s.hit
        return lambda key: hit(item, key)

    return lambda keys: _run(make(), keys)


def _run(check: Callable[[str], object], keys: list[str]) -> None:
    for k in keys:
        check(k)


CONTENDERS: dict[str, Callable[[list[str]], None]] = {
    "limits FixedWindow (MemoryStorage)": limits_contender(FixedWindowRateLimiter),
    "limits SlidingWindowCounter (MemoryStorage)": limits_contender(SlidingWindowCounterRateLimiter),
    "limits MovingWindow (MemoryStorage)": limits_contender(MovingWindowRateLimiter),
    "halt token_bucket": halt_contender("token_bucket"),
    "halt gcra": halt_contender("gcra"),
    "halt fixed_window": halt_contender("fixed_window"),
    "halt sliding_window": halt_contender("sliding_window"),
    "halt leaky_bucket": halt_contender("leaky_bucket"),
}
REFERENCE = "limits FixedWindow (MemoryStorage)"


def timed(fn: Callable[[list[str]], None], keys: list[str]) -> float:
    """Checks per second of this thread's CPU time."""
    gc.collect()
    t = time.thread_time()
    fn(keys)
    return len(keys) / (time.thread_time() - t)


def fmt(rate: float) -> str:
    return f"{rate / 1e6:.2f}M/s" if rate >= 1e6 else f"{rate / 1e3:.1f}k/s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    hot = ["user:42"] * HOT
    many = [f"ip:10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(KEYS)]
    results: dict[str, dict[str, list[float]]] = {n: {"hot": [], "many": []} for n in CONTENDERS}
    names = list(CONTENDERS)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            results[name]["hot"].append(timed(CONTENDERS[name], hot))
            results[name]["many"].append(timed(CONTENDERS[name], many))
    med = {n: {k: statistics.median(v) for k, v in d.items()} for n, d in results.items()}
    if args.json:
        print(json.dumps(med, indent=2))
        return
    ref = med[REFERENCE]
    print(
        f"python {sys.version.split()[0]}, limits {limits.__version__}; {args.rounds} rounds, alternating; "
        "medians of CPU time\n"
    )
    print(
        "| contender | 1 hot key | µs per check | vs limits FixedWindow "
        "| 100k keys, first touch | vs limits FixedWindow |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for n in names:
        m = med[n]
        print(
            f"| {n} | {fmt(m['hot'])} | {1e6 / m['hot']:.2f} | {m['hot'] / ref['hot']:.2f}x | "
            f"{fmt(m['many'])} | {m['many'] / ref['many']:.2f}x |"
        )
    halt_hot = [med[n]["hot"] for n in names if n.startswith("halt")]
    limits_best = max(med[n]["hot"] for n in names if n.startswith("limits"))
    worst_us = 1e6 / min(halt_hot)
    print("\n| target | met | measured |\n| --- | --- | --- |")
    met = "yes" if worst_us < 5 else "no"
    print(f"| a check in under 5 µs (every algorithm, hot key) | {met} | slowest {worst_us:.2f} µs |")
    ratio = min(halt_hot) / limits_best
    print(f"| faster than limits (slowest halt vs fastest limits) | {'yes' if ratio > 1 else 'no'} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
