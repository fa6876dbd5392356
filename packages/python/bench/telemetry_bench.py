"""What telemetry costs an in-memory check (one hot key): no telemetry, a no-op hook, MetricsTelemetry,
LoggingTelemetry into a no-op logger, PrometheusTelemetry and OTelTelemetry (SDK meter, no span). The Python twin of
bench/telemetry.mjs.

Run: ``packages/python/.venv/bin/python packages/python/bench/telemetry_bench.py [--checks N] [--rounds N]``

Rounds alternate between the setups; the table reports medians of this thread's CPU time per check
(``time.thread_time``: on a shared machine wall time mostly measures the others). A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # halt from this checkout

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from halt import InMemoryStore, LoggingTelemetry, MetricsTelemetry, Policy, RateLimiter
from halt.telemetry.otel import OTelTelemetry
from halt.telemetry.prometheus import PrometheusTelemetry


class Quiet:
    def info(self, line: str) -> None:
        pass

    def warning(self, line: str) -> None:
        pass


SETUPS: dict[str, Callable[[], Any]] = {
    "no telemetry": lambda: None,
    "a no-op on_check": lambda: {"on_check": lambda e: None},
    "MetricsTelemetry": MetricsTelemetry,
    "LoggingTelemetry (no-op logger)": lambda: LoggingTelemetry(logger=Quiet()),
    "PrometheusTelemetry": lambda: PrometheusTelemetry(registry=CollectorRegistry()),
    "OTelTelemetry (SDK meter, no span)": lambda: OTelTelemetry(
        meter=MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("halt"), span_events=False
    ),
}


def run(make: Callable[[], Any], n: int) -> float:
    """Nanoseconds of CPU time per check."""
    limiter = RateLimiter(
        policy=Policy(name="bench", limit=10**12, window=60), store=InMemoryStore(sweep_interval=0), telemetry=make()
    )
    check = limiter.check
    for _ in range(20_000):
        check("hot")  # warm-up
    gc.collect()
    t0 = time.thread_time_ns()
    for _ in range(n):
        check("hot")
    return (time.thread_time_ns() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checks", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    ns: dict[str, list[float]] = {k: [] for k in SETUPS}
    for _ in range(args.rounds):
        for name, make in SETUPS.items():
            ns[name].append(run(make, args.checks))
    base = statistics.median(ns["no telemetry"])
    print(f"Python {platform.python_version()}; {args.rounds} rounds of {args.checks} checks on one hot key, medians\n")
    print("| telemetry | ns per check | added |\n| --- | --- | --- |")
    for name, values in ns.items():
        m = statistics.median(values)
        print(f"| {name} | {m:.0f} | {'' if name == 'no telemetry' else f'+{m - base:.0f} ns'} |")


if __name__ == "__main__":
    main()
