"""Checks per second of each store on its test server, with 1 and 50 checks in flight (threads for a sync store,
asyncio tasks for an asyncio one), each in flight on a key of its own, and one hot key shared by all 50.

Run (servers from scripts/services.sh): ``. .services/env && packages/python/.venv/bin/python
packages/python/bench/stores_bench.py [--seconds 2]``

Wall time over a fixed duration, on whatever else the machine runs: a quick comparison, not a test; it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # halt and tests.stores.factories from this checkout

from halt import InMemoryStore, Policy, RateLimiter
from tests.stores.factories import open_dynamodb, open_memcached, open_mongodb, open_postgres, open_redis


def stores() -> list[tuple[str, Callable[[], Any]]]:
    """(name, open) of each store whose server is running: open returns (store, close)."""
    pg, mc, rd, mg, dd = (
        os.environ.get(f"HALT_TEST_{v}_URL") for v in ("POSTGRES", "MEMCACHED", "REDIS", "FERRETDB", "DYNAMODB")
    )
    table, prefix = f"halt_bench_{uuid.uuid4().hex[:6]}", f"halt-bench-{uuid.uuid4().hex[:6]}:"
    out: list[tuple[str, Callable[[], Any]]] = [("InMemoryStore", lambda: (InMemoryStore(sweep_interval=0), None))]
    for form in ("sync", "async"):
        if rd:
            out.append((f"Redis ({form})", lambda f=form: open_redis("single", rd, prefix, f, "0", "5")))
        if pg:
            out.append((f"PostgreSQL ({form})", lambda f=form: open_postgres(pg, table, prefix, f, "5000", "10")))
        if mc:
            out.append((f"Memcached ({form})", lambda f=form: open_memcached(mc, prefix, f, "5000")))
        if mg:
            form_ = "sync" if form == "sync" else "asyncio"
            out.append((f"MongoDB on FerretDB ({form})", lambda f=form_: open_mongodb(mg, table, prefix, f, "5000")))
    if dd:
        out.append(("DynamoDB on moto (sync)", lambda: open_dynamodb(dd, table, prefix, "5000", create=True)))
    return out


def run_sync(limiter: RateLimiter, inflight: int, hot: bool, seconds: float) -> float:
    done = [0] * inflight
    stop = time.perf_counter() + seconds
    start = threading.Barrier(inflight)

    def lane(i: int) -> None:
        key = "hot" if hot else f"k{i}"
        start.wait()
        n = 0
        while time.perf_counter() < stop:
            limiter.check(key)
            n += 1
        done[i] = n

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(inflight)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


async def run_async(limiter: RateLimiter, inflight: int, hot: bool, seconds: float) -> float:
    done = [0] * inflight
    stop = time.perf_counter() + seconds

    async def lane(i: int) -> None:
        key = "hot" if hot else f"k{i}"
        n = 0
        while time.perf_counter() < stop:
            await limiter.acheck(key)
            n += 1
        done[i] = n

    t0 = time.perf_counter()
    await asyncio.gather(*(lane(i) for i in range(inflight)))
    return sum(done) / (time.perf_counter() - t0)


async def measure(name: str, open_store: Callable[[], Any], seconds: float) -> list[str]:
    store, close = open_store()
    limiter = RateLimiter(
        store=store,
        policy=Policy(name=f"bench-{uuid.uuid4().hex[:6]}", limit=1_000_000_000, window=60),
        timeout=5000,
        on_store_error="closed",
    )
    for i in range(50):
        await limiter.acheck(f"k{i}")  # connections and tables before the clock
    rows = []
    for inflight, hot in ((1, False), (50, False), (50, True)):
        if store.synchronous:
            rate = await asyncio.get_running_loop().run_in_executor(None, run_sync, limiter, inflight, hot, seconds)
        else:
            rate = await run_async(limiter, inflight, hot, seconds)
        rows.append(f"{rate:,.0f}")
    counters = getattr(store, "counters", None)
    extra = "" if counters is None or not hasattr(counters, "conflicts") else f"conflicts {counters.conflicts}"
    await limiter.aclear()
    if close is not None:
        done = close()
        if asyncio.iscoroutine(done):
            await done
    return [name, *rows, extra]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    print("| store | 1 in flight | 50 in flight (50 keys) | 50 in flight (one key) | |")
    print("|---|---|---|---|---|")
    for name, open_store in stores():
        print("| " + " | ".join(await measure(name, open_store, args.seconds)) + " |", flush=True)
    if os.environ.get("HALT_TEST_POSTGRES_URL"):
        import psycopg

        with psycopg.connect(os.environ["HALT_TEST_POSTGRES_URL"], autocommit=True) as c:
            for (t,) in c.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'halt_bench_%'").fetchall():
                c.execute(f'DROP TABLE "{t}"')


if __name__ == "__main__":
    asyncio.run(main())
