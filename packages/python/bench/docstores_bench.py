"""Checks per second of the MongoDB and DynamoDB stores through RateLimiter: 1 and 50 checks in flight over 10k keys,
and 50 in flight on one hot key; sync stores from threads, AsyncMongoDBStore from asyncio tasks. A limit nobody
reaches, so every check writes. Medians of alternating rounds.

Needs the servers: eval "$(scripts/services.sh start mongodb dynamodb)", then
    packages/python/.venv/bin/python packages/python/bench/docstores_bench.py [--seconds 3] [--rounds 3] [--only dynamo]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
import uuid
from typing import Callable

import boto3

from halt import Policy, RateLimiter
from halt.stores.dynamodb import DynamoDBStore, client_config, create_dynamo_table
from halt.stores.mongodb import AsyncMongoDBStore, MongoDBStore

POLICY = Policy(name="bench", limit=1e9, window=60)
KEYS = [f"user:{i}" for i in range(10_000)]
SCENARIOS = [(1, 10_000), (50, 10_000), (50, 1)]


def label(inflight: int, keys: int) -> str:
    return f"{inflight} in flight, {'1 hot key' if keys == 1 else '10k keys'}"


def threads(limiter: RateLimiter, inflight: int, keys: int, seconds: float) -> float:
    """Checks per second from ``inflight`` threads, each checking keys in turn."""
    end = time.perf_counter() + seconds
    counts = [0] * inflight

    def lane(w: int) -> None:
        i, n = w * 97, 0
        while time.perf_counter() < end:
            limiter.check(KEYS[i % keys])
            i += 1
            n += 1
        counts[w] = n

    start = time.perf_counter()
    ts = [threading.Thread(target=lane, args=(w,)) for w in range(inflight)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def tasks(limiter: RateLimiter, inflight: int, keys: int, seconds: float, loop: asyncio.AbstractEventLoop) -> float:
    """Checks per second from ``inflight`` asyncio tasks."""

    async def run() -> float:
        end = time.perf_counter() + seconds
        counts = [0] * inflight

        async def lane(w: int) -> None:
            i, n = w * 97, 0
            while time.perf_counter() < end:
                await limiter.acheck(KEYS[i % keys])
                i += 1
                n += 1
            counts[w] = n

        start = time.perf_counter()
        await asyncio.gather(*(lane(w) for w in range(inflight)))
        return sum(counts) / (time.perf_counter() - start)

    return loop.run_until_complete(run())


Contender = tuple[Callable[[int, int, float], float], Callable[[], object]]


def contenders(loop: asyncio.AbstractEventLoop) -> dict[str, Contender]:
    """name -> (measure(inflight, keys, seconds), close)."""
    out: dict[str, Contender] = {}
    mongo = os.environ.get("HALT_TEST_MONGODB_URL") or os.environ.get("HALT_TEST_FERRETDB_URL")
    if mongo:
        coll = f"bench_{uuid.uuid4().hex[:8]}"
        options = {"maxPoolSize": 60}
        s = MongoDBStore(coll, connection_string=mongo, database="halt_bench", client_options=options, timeout=30_000)
        lim = RateLimiter(store=s, policy=POLICY)
        out["halt MongoDBStore (threads)"] = (
            lambda n, k, sec, lim=lim: threads(lim, n, k, sec),
            lambda s=s: (s.collection.drop(), s.close()),  # type: ignore[misc]
        )

        async def make_async() -> AsyncMongoDBStore:
            return AsyncMongoDBStore(coll + "a", connection_string=mongo, database="halt_bench", client_options=options)

        a = loop.run_until_complete(make_async())
        alim = RateLimiter(store=a, policy=POLICY, timeout=30_000)

        async def close_async(a: AsyncMongoDBStore = a) -> None:
            await a.collection.drop()
            await a.aclose()

        out["halt AsyncMongoDBStore (tasks)"] = (
            lambda n, k, sec, lim=alim: tasks(lim, n, k, sec, loop),
            lambda: loop.run_until_complete(close_async()),
        )
    dynamo = os.environ.get("HALT_TEST_DYNAMODB_URL")
    if dynamo:
        table = f"bench_{uuid.uuid4().hex[:8]}"
        client = boto3.client(
            "dynamodb",
            endpoint_url=dynamo,
            region_name="us-east-1",
            aws_access_key_id="halt",
            aws_secret_access_key="halt",
            config=client_config(30_000),
        )
        create_dynamo_table(client, table_name=table)
        d = RateLimiter(store=DynamoDBStore(table, client=client), policy=POLICY)
        out["halt DynamoDBStore (threads)"] = (
            lambda n, k, sec, lim=d: threads(lim, n, k, sec),
            lambda: client.delete_table(TableName=table),
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default=None, help="a substring of the contenders' names")
    args = ap.parse_args()
    loop = asyncio.new_event_loop()
    found = contenders(loop)
    chosen = {n: c for n, c in found.items() if args.only is None or args.only.lower() in n.lower()}
    if not chosen:
        sys.exit("no server: set HALT_TEST_FERRETDB_URL / HALT_TEST_DYNAMODB_URL (scripts/services.sh start ...)")
    print(f"python {sys.version.split()[0]}, servers on loopback, {args.rounds} alternating rounds of {args.seconds} s")
    print(f"each, medians, checks/s; limit never reached\n\n| store | {' | '.join(label(*s) for s in SCENARIOS)} |")
    print(f"|---|{'---|' * len(SCENARIOS)}")
    results: dict[str, list[float]] = {n: [] for n in chosen}
    for inflight, keys in SCENARIOS:
        for measure, _ in chosen.values():
            measure(inflight, keys, 0.5)  # warm up: connections, the TTL index, the table
        samples: dict[str, list[float]] = {n: [] for n in chosen}
        for _ in range(args.rounds):
            for n, (measure, _) in chosen.items():
                samples[n].append(measure(inflight, keys, args.seconds))
        for n in chosen:
            results[n].append(statistics.median(samples[n]))
    for n, row in results.items():
        print(f"| {n} | {' | '.join(f'{r:,.0f}/s' for r in row)} |")
    for _, close in chosen.values():
        close()


if __name__ == "__main__":
    main()
