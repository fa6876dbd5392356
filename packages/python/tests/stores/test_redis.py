"""RedisStore and AsyncRedisStore on real Redis (single server and a 3-master Cluster): every spec vector with
explicit times, the stored state and key layout of spec/KEYS.md, NOSCRIPT reloads, clear, concurrency, failover."""

from __future__ import annotations

import asyncio
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from halt import HaltConfigError, Policy, RateLimiter
from halt.core.failover import StoreTimeoutError
from halt.core.policy import compile_policy
from halt.stores.redis import SCRIPTS, SHA1, AsyncRedisStore, RedisStore, storage_key
from halt.stores.redis.store import num_arg
from tests.support import (
    SPEC_DIR,
    FakeClock,
    assert_state,
    case_id,
    expected_fields,
    outcome_fields,
    redis_url,
    to_policy,
    vector_cases,
)

CASES = vector_cases()


def stored_state(client: Any, key: str) -> list[float]:
    raw = client.get(key)
    assert raw is not None
    return list(struct.unpack(f"<{len(raw) // 8}d", raw))


def test_the_packaged_scripts_are_spec_redis_byte_for_byte() -> None:
    for name, text in SCRIPTS.items():
        assert (SPEC_DIR / "redis" / f"{name}.lua").read_text(encoding="utf-8") == text
    ts = (Path(SPEC_DIR).parent / "packages/typescript/src/stores/redis/scripts.ts").read_text()
    for name, sha in SHA1.items():
        assert f"{name}: '{sha}'" in ts  # the same SHA1 the TypeScript SDK sends


def test_key_layout_of_spec_keys_md() -> None:
    assert storage_key("halt:", "api:tb", "ip:203.0.113.7") == "halt:api:tb:{ip:203.0.113.7}"
    assert storage_key("halt:", "api:tb", "x}y") == "halt:api:tb:{x%7Dy}"
    assert storage_key("halt:", "api:tb", "%7B") == "halt:api:tb:{%257B}"
    assert storage_key("halt:", "a{b}:tb", "user:42") == "halt:a%7Bb%7D:tb:{user:42}"


def test_numbers_are_sent_as_javascript_writes_them() -> None:
    assert [num_arg(x) for x in (60000.0, 1700000000000, 0.1, 2.5, 1e-7, True)] == [
        "60000",
        "1700000000000",
        "0.1",
        "2.5",
        "1e-07",
        "1",
    ]


@pytest.mark.parametrize("pair", CASES, ids=[case_id(p) for p in CASES])
def test_vector_sync(pair: tuple[str, dict[str, Any]], sync_client: Any, prefix: str) -> None:
    algorithm, case = pair
    # Vector times are in the past and keys live until the state is fresh (often 1 ms): a grace keeps them.
    store = RedisStore(sync_client, prefix=prefix, expiry_grace_ms=60_000)
    rule = compile_policy(to_policy(algorithm, case))
    for i, step in enumerate(case["steps"]):
        if step.get("peek"):
            out = store.peek(rule.ns, "k", rule, step["t"])
        else:
            out = store.consume(rule.ns, "k", rule, step["t"], step.get("cost", 1))
        assert outcome_fields(out) == expected_fields(step["expect"]), f"step {i}"
        if "state" in step["expect"]:
            assert_state(stored_state(sync_client, store.key(rule.ns, "k")), step["expect"]["state"])
    store.clear()


ASYNC_CASES = CASES[::3]  # a third of the vectors again through redis.asyncio (the script is the same)


@pytest.mark.parametrize("pair", ASYNC_CASES, ids=[case_id(p) for p in ASYNC_CASES])
async def test_vector_async(pair: tuple[str, dict[str, Any]], async_client: Any, prefix: str) -> None:
    algorithm, case = pair
    store = AsyncRedisStore(async_client, prefix=prefix, expiry_grace_ms=60_000)
    rule = compile_policy(to_policy(algorithm, case))
    for i, step in enumerate(case["steps"]):
        if step.get("peek"):
            out = await store.peek(rule.ns, "k", rule, step["t"])
        else:
            out = await store.consume(rule.ns, "k", rule, step["t"], step.get("cost", 1))
        assert outcome_fields(out) == expected_fields(step["expect"]), f"step {i}"
    await store.clear()


def test_noscript_reload_and_counters(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix)
    limiter = RateLimiter(policy=Policy(name="api", limit=5, window=60), store=store, clock=FakeClock())
    limiter.check("a")
    limiter.check("a")
    assert (store.counters.calls, store.counters.script_loads, store.counters.checks) == (2, 1, 2)
    sync_client.script_flush()  # on a Cluster: every node
    assert limiter.check("a").remaining == 2
    assert store.counters.script_loads == 2 and store.counters.calls == 4
    limiter.clear()


def test_reset_clear_and_ttl(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix)
    clock = FakeClock()
    a = RateLimiter(policy=Policy(name="a", limit=5, window=10), store=store, clock=clock)
    b = RateLimiter(policy=Policy(name="b", limit=5, window=10), store=store, clock=clock)
    for ident in ("u1", "u2", "we{ird}%"):
        a.check(ident)
        b.check(ident)
    key = store.key("a:tb", "u1")
    assert 0 < sync_client.pttl(key) <= 2000  # one unit back after 2 s: then the state is fresh
    a.reset("u1")
    assert sync_client.exists(key) == 0
    a.clear()
    assert sync_client.exists(store.key("a:tb", "u2")) == 0
    assert sync_client.exists(store.key("b:tb", "we{ird}%")) == 1
    store.clear()
    assert sync_client.exists(store.key("b:tb", "u2")) == 0


def test_server_time(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix, time="server")
    limiter = RateLimiter(policy=Policy(limit=2, window=60), store=store, clock=lambda: 0)
    d = limiter.check("a")
    assert d.allowed and d.reset_at > 1_700_000_000  # Redis's clock, not the limiter's
    store.clear()


def test_many_threads_on_one_key(sync_client: Any, prefix: str) -> None:
    limiter = RateLimiter(policy=Policy(limit=150, window=3600), store=RedisStore(sync_client, prefix=prefix))
    admitted = [0] * 8

    def worker(i: int) -> None:
        for _ in range(40):
            if limiter.check("hot").allowed:
                admitted[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 150
    limiter.clear()


async def test_many_tasks_on_one_key(async_client: Any, prefix: str) -> None:
    limiter = RateLimiter(
        policy=Policy(limit=150, window=3600, algorithm="sliding_window"),
        store=AsyncRedisStore(async_client, prefix=prefix),
        timeout=5000,
    )
    # 50 in flight at once: redis-py's asyncio pool raises MaxConnectionsError past its cap (which the limiter
    # would rightly count as a store failure and answer from the fallback).
    gate = asyncio.Semaphore(50)

    async def one() -> Any:
        async with gate:
            return await limiter.acheck("hot")

    results = await asyncio.gather(*(one() for _ in range(300)))
    assert sum(d.allowed for d in results) == 150
    assert (await limiter.astats()).allowed == 150
    await limiter.aclear()


async def test_sync_calls_on_an_async_store_say_what_to_do(prefix: str) -> None:
    import redis.asyncio

    limiter = RateLimiter(policy=Policy(limit=1, window=1), store=AsyncRedisStore(redis.asyncio.Redis(), prefix=prefix))
    with pytest.raises(HaltConfigError) as e:
        limiter.check("a")
    assert e.value.code == "HALT_ASYNC_STORE" and "acheck" in str(e.value)


async def test_options_are_validated() -> None:  # async: redis.asyncio clients need a loop on 3.9
    import redis.asyncio

    client = redis.Redis()
    for kw, code in (
        ({"prefix": ""}, "HALT_INVALID_REDIS_PREFIX"),
        ({"prefix": "a{b"}, "HALT_INVALID_REDIS_PREFIX"),
        ({"time": "local"}, "HALT_INVALID_REDIS_TIME"),
        ({"expiry_grace_ms": -1}, "HALT_INVALID_EXPIRY_GRACE"),
    ):
        with pytest.raises(HaltConfigError) as e:
            RedisStore(client, **kw)
        assert e.value.code == code
    for bad in (None, object(), redis.asyncio.Redis()):
        with pytest.raises(HaltConfigError) as e:
            RedisStore(bad)
        assert e.value.code == "HALT_INVALID_REDIS_CLIENT"
    with pytest.raises(HaltConfigError):
        AsyncRedisStore(client)


@pytest.mark.parametrize("mode", ["fallback", "open", "closed"])
def test_failover_when_redis_is_unreachable(mode: str) -> None:
    # Nothing listens on port 1; no client-side retries, so each failure is one refused connect.
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    errors: list[Any] = []

    class Errors:
        def on_error(self, event: Any) -> None:
            errors.append(event)

    clock = FakeClock()
    limiter = RateLimiter(
        policy=Policy(limit=2, window=60),
        store=RedisStore(dead),
        on_store_error=mode,
        clock=clock,
        telemetry=Errors(),
    )
    ds = [limiter.check("a") for _ in range(3)]
    if mode == "fallback":
        assert [d.allowed for d in ds] == [True, True, False] and ds[0].reason is None
    else:
        assert {d.reason for d in ds} == {"store_error"} and all(d.allowed == (mode == "open") for d in ds)
    assert len(errors) == 1 and errors[0].action == mode  # then the circuit is open: no more calls
    assert limiter.store_down
    clock.advance(1000)
    limiter.check("a")  # one probe, which fails again
    assert len(errors) == 2


async def test_async_failover_times_out(prefix: str) -> None:
    import redis.asyncio

    dead = redis.asyncio.Redis(port=1, retry=AsyncRetry(NoBackoff(), 0))
    limiter = RateLimiter(
        policy=Policy(limit=2, window=60), store=AsyncRedisStore(dead, prefix=prefix), on_store_error="closed"
    )
    d = await limiter.acheck("a")
    assert (d.allowed, d.reason, d.retry_after) == (False, "store_error", 1)
    await dead.aclose()


async def test_a_slow_redis_takes_the_failure_path_after_the_timeout(prefix: str) -> None:
    import redis.asyncio

    url = redis_url()
    if url is None:
        pytest.skip("HALT_TEST_REDIS_URL not set")
    client = redis.asyncio.Redis.from_url(url)
    errors: list[Any] = []

    class Errors:
        def on_error(self, event: Any) -> None:
            errors.append(event.error)

    limiter = RateLimiter(
        policy=Policy(limit=2, window=60),
        store=AsyncRedisStore(client, prefix=prefix),
        timeout=50,
        on_store_error="open",
        telemetry=Errors(),
    )
    assert (await limiter.acheck("a")).reason is None  # connected, script loaded
    admin = redis.Redis.from_url(url)
    admin.execute_command("CLIENT", "PAUSE", "400", "ALL")  # Redis answers nobody for 400 ms
    try:
        d = await limiter.acheck("a")
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
    assert (d.allowed, d.reason) == (True, "store_error")
    assert len(errors) == 1 and isinstance(errors[0], StoreTimeoutError)
    await client.aclose()
