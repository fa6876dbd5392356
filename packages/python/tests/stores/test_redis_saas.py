"""Quotas and penalties on real Redis (single server and a 3-master Cluster), sync and asyncio: every spec/saas vector
through quota.lua and penalty.lua (with the stored state), the key layout, and concurrency (threads, processes and
asyncio tasks on one quota key with limit 150 admit exactly 150; N concurrent violations give a score of exactly N)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from typing import Any, Awaitable, TypeVar

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from halt import PenaltyConfig, PenaltyManager, Policy, Quota, QuotaManager, RateLimiter
from halt.stores.redis import AsyncRedisStore, RedisStore
from tests.saas.support import kernel_cases, kernel_id, kernel_rule
from tests.stores.test_redis import stored_state
from tests.support import FakeClock, assert_state, expected_fields, outcome_fields, redis_url

T = TypeVar("T")
CASES = kernel_cases()
LIMIT = 150
QUOTA = Quota(name="calls", limit=LIMIT, period="monthly")
#: A penalty that neither starts nor decays noticeably while a test runs on the real clock.
SLOW = PenaltyConfig(threshold=1_000_000, duration=60, decay_rate=1e-6)


@pytest.mark.parametrize("pair", CASES, ids=[kernel_id(p) for p in CASES])
def test_kernel_vector_sync(pair: tuple[str, dict[str, Any]], sync_client: Any, prefix: str) -> None:
    kernel, case = pair
    store = RedisStore(sync_client, prefix=prefix, expiry_grace_ms=60_000)  # vector times are in the past
    for i, step in enumerate(case["steps"]):
        rule = kernel_rule(kernel, case, step)
        if step.get("peek"):
            out = store.peek(rule.ns, "k", rule, step["t"])
        else:
            out = store.consume(rule.ns, "k", rule, step["t"], step.get("cost", 1))
        assert outcome_fields(out) == expected_fields(step["expect"]), f"step {i}"
        expected = step["expect"]["state"]
        if expected is None:
            assert sync_client.exists(store.key(rule.ns, "k")) == 0
        else:
            assert_state(stored_state(sync_client, store.key(rule.ns, "k")), expected)
    store.clear()


@pytest.mark.parametrize("pair", CASES, ids=[kernel_id(p) for p in CASES])
async def test_kernel_vector_async(pair: tuple[str, dict[str, Any]], async_client: Any, prefix: str) -> None:
    kernel, case = pair
    store = AsyncRedisStore(async_client, prefix=prefix, expiry_grace_ms=60_000)
    for i, step in enumerate(case["steps"]):
        rule = kernel_rule(kernel, case, step)
        if step.get("peek"):
            out = await store.peek(rule.ns, "k", rule, step["t"])
        else:
            out = await store.consume(rule.ns, "k", rule, step["t"], step.get("cost", 1))
        assert outcome_fields(out) == expected_fields(step["expect"]), f"step {i}"
    await store.clear()


def test_key_layout_and_expiry(sync_client: Any, prefix: str) -> None:
    clock = FakeClock(1_769_904_000_000 - 3_660_000)  # 23:59 on January 31st 2026 in Berlin (22:59 UTC)
    store = RedisStore(sync_client, prefix=prefix)
    quotas = QuotaManager(store, clock=clock, time_zone="Europe/Berlin")
    quotas.consume_quota("user:42", QUOTA, 2)
    key = f"{prefix}quota:calls:monthly:Europe/Berlin:q:{{user:42}}"
    assert stored_state(sync_client, key)[3] == 2
    # Berlin's February starts at 23:00 UTC on January 31st: the key lives until then (a minute).
    assert 0 < sync_client.pttl(key) <= 60_000
    penalties = PenaltyManager(PenaltyConfig(threshold=5, duration=60), store=store, clock=clock)
    penalties.record_violation("ip:203.0.113.7", 2)
    assert stored_state(sync_client, f"{prefix}penalty:pen:{{ip:203.0.113.7}}")[1] == 2
    assert quotas.refund_quota("user:42", QUOTA).quota.used == 1
    store.clear()


def test_threads_take_exactly_the_limit(sync_client: Any, prefix: str) -> None:
    quotas = QuotaManager(RedisStore(sync_client, prefix=prefix))
    taken = [0] * 8
    start = threading.Barrier(8)

    def lane(i: int) -> None:
        start.wait()
        for _ in range(50):
            if quotas.consume_quota("hot", QUOTA).allowed:
                taken[i] += 1

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(taken) == LIMIT
    assert quotas.check_quota("hot", QUOTA).quota.used == LIMIT
    quotas.store.clear()


def _process_lane(url: str, prefix: str, n: int, out: Any) -> None:
    client = redis.Redis.from_url(url)
    quotas = QuotaManager(RedisStore(client, prefix=prefix))
    penalties = PenaltyManager(SLOW, store=RedisStore(client, prefix=prefix))
    taken = sum(quotas.consume_quota("hot", QUOTA).allowed for _ in range(n))
    for _ in range(n):
        penalties.record_violation("abuser")
    out.put(taken)
    client.close()


def test_processes_take_exactly_the_limit_and_lose_no_violation(prefix: str) -> None:
    url = redis_url()
    if url is None:
        pytest.skip("HALT_TEST_REDIS_URL not set")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_lane, args=(url, prefix, 100, out)) for _ in range(4)]
    for p in procs:
        p.start()
    taken = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sum(taken) == LIMIT
    client = redis.Redis.from_url(url)
    # Decay over the run (1e-6 points per hour) is far below 1e-3 points.
    score = PenaltyManager(SLOW, store=RedisStore(client, prefix=prefix))
    assert abs(score.get_penalty("abuser").abuse_score - 400) < 1e-3
    RedisStore(client, prefix=prefix).clear()
    client.close()


async def test_tasks_take_exactly_the_limit_and_lose_no_violation(async_client: Any, prefix: str) -> None:
    clock = FakeClock()
    store = AsyncRedisStore(async_client, prefix=prefix)
    quotas = QuotaManager(store, clock=clock)
    # 50 in flight at once: redis-py's asyncio pool raises MaxConnectionsError past its cap.
    gate = asyncio.Semaphore(50)

    async def bounded(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    results = await asyncio.gather(*(bounded(quotas.aconsume_quota("hot", QUOTA)) for _ in range(400)))
    assert sum(r.allowed for r in results) == LIMIT
    penalties = PenaltyManager(PenaltyConfig(threshold=1000, duration=60), store=store, clock=clock)
    await asyncio.gather(*(bounded(penalties.arecord_violation("abuser")) for _ in range(400)))
    p = await penalties.aget_penalty("abuser")
    assert p.abuse_score == 400 and not p.is_active()
    with pytest.raises(Exception, match="HALT_ASYNC_STORE"):
        quotas.consume_quota("hot", QUOTA)
    await store.clear()


async def test_a_limiter_with_penalties_over_an_asyncio_store(async_client: Any, prefix: str) -> None:
    clock = FakeClock()
    store = AsyncRedisStore(async_client, prefix=prefix)
    pm = PenaltyManager(PenaltyConfig(threshold=2, duration=60), store=store, clock=clock)
    limiter = RateLimiter(store=store, clock=clock, penalties=pm, policy=Policy(name="p", limit=2, window=60))
    for _ in range(4):
        await limiter.acheck("k")
    assert (await pm.aget_penalty("k")).is_active()
    d = await limiter.acheck("k")
    assert (d.allowed, d.reason, d.limit) == (False, "penalty", 1)
    d = await limiter.apeek("k")  # a cost-0 step under the reduced limit; nothing recorded
    assert (d.allowed, d.limit, d.remaining) == (True, 1, 0)
    assert (await pm.aget_penalty("k")).abuse_score == 3
    with pytest.raises(Exception, match="HALT_INVALID_PENALTY"):
        RateLimiter(policy=Policy(limit=1, window=60), penalties=pm)  # a sync limiter, an asyncio penalty store
    await store.clear()


def _down() -> RedisStore:
    """A real Redis client on a port where nothing listens: every call fails at once."""
    return RedisStore(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)))


async def test_a_failing_penalty_store_never_fails_a_check(async_client: Any, prefix: str) -> None:
    clock = FakeClock()
    broken = PenaltyManager(PenaltyConfig(threshold=1, duration=60), store=_down(), clock=clock)
    sync = RateLimiter(policy=Policy(name="s", limit=1, window=60), clock=clock, penalties=broken)
    assert sync.check("k").allowed
    d = sync.check("k")
    assert (d.allowed, d.reason) == (False, "limit")
    remote = RateLimiter(
        store=AsyncRedisStore(async_client, prefix=prefix),
        policy=Policy(name="a", limit=1, window=60),
        clock=clock,
        penalties=broken,
    )
    assert (await remote.acheck("k")).allowed
    assert (await remote.acheck("k")).reason == "limit"
    await remote.aclear()
