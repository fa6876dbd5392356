"""Limit sets on real Redis (single server and a 3-master Cluster, sync and asyncio): every spec/vectors/sets case
through spec/redis/limit_set.lua (outcomes and stored states), the limiter on a set, many concurrent clients on one
identity, and the blocked-key cache."""

from __future__ import annotations

import asyncio
import random
import struct
import threading
from typing import Any, Optional

import pytest

from halt import HaltConfigError, Policy, RateLimiter
from halt.core.policy import Rule, compile_policy
from halt.core.sets import evaluate_set
from halt.stores.redis import AsyncRedisStore, RedisStore
from halt.stores.redis.scripts import SET_SCRIPT, SET_SHA1
from tests.stores.conformance import fields, random_sets
from tests.support import SPEC_DIR, FakeClock, assert_state, outcome_fields, set_vector_cases, to_set_policies

CASES = set_vector_cases()
IDS = [c["name"] for c in CASES]
T0 = 1_700_000_000_000


def stored(client: Any, key: str) -> Optional[list[float]]:
    raw = client.get(key)
    return None if raw is None else list(struct.unpack(f"<{len(raw) // 8}d", raw))


def expect_fields(want: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in want.items() if k != "state"}


def test_the_packaged_set_script_is_spec_redis_byte_for_byte() -> None:
    assert (SPEC_DIR / "redis" / "limit_set.lua").read_text(encoding="utf-8") == SET_SCRIPT
    ts = (SPEC_DIR.parent / "packages/typescript/src/stores/redis/scripts.ts").read_text()
    assert f"export const SET_SHA1 = '{SET_SHA1}'" in ts


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vector_sync(case: dict[str, Any], sync_client: Any, prefix: str) -> None:
    # Vector times are in the past and keys live until the state is fresh: a grace keeps them.
    store = RedisStore(sync_client, prefix=prefix, expiry_grace_ms=600_000)
    rules = [compile_policy(p) for p in to_set_policies(case)]
    for i, step in enumerate(case["steps"]):
        outcomes = store.consume_set("k", rules, step["t"], [step["cost"]] * len(rules))
        for j, (rule, want) in enumerate(zip(rules, step["expect"]["policies"])):
            assert outcome_fields(outcomes[j]) == expect_fields(want), f"step {i}, policy {j}"
            state = stored(sync_client, store.key(rule.ns, "k"))
            if want["state"] is None:
                assert state is None, f"step {i}, policy {j}: nothing stored"
            else:
                assert state is not None
                assert_state(state, want["state"])
    store.clear()


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_vector_async(case: dict[str, Any], async_client: Any, prefix: str) -> None:
    store = AsyncRedisStore(async_client, prefix=prefix, expiry_grace_ms=600_000)
    rules = [compile_policy(p) for p in to_set_policies(case)]
    for i, step in enumerate(case["steps"]):
        outcomes = await store.consume_set("k", rules, step["t"], [step["cost"]] * len(rules))
        for j, want in enumerate(step["expect"]["policies"]):
            assert outcome_fields(outcomes[j]) == expect_fields(want), f"step {i}, policy {j}"
    await store.clear()


@pytest.mark.parametrize("seed", [1, 2])
def test_random_sets_decide_as_evaluate_set(seed: int, sync_client: Any, prefix: str) -> None:
    """Mixed algorithms, cooldowns, shaping and shadow policies: every field (expiry included) as the model's."""
    store = RedisStore(sync_client, prefix=prefix, expiry_grace_ms=600_000)
    for rules, steps in random_sets(seed):
        model: list[Optional[list[float]]] = [None] * len(rules)
        for t, costs in steps:
            want = evaluate_set(model, t, costs, rules)
            assert [fields(o) for o in store.consume_set("k", rules, t, costs)] == [fields(o) for o in want.outcomes]
            model = [m if n is None else n for m, n in zip(model, want.states)]
    store.clear()


def test_a_set_shares_keys_with_single_policy_checks_and_reloads_its_script(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix)
    clock = FakeClock(T0)
    day = Policy(name="per_day", limit=5, window=86_400, algorithm="fixed_window")
    alone = RateLimiter(policy=day, store=store, clock=clock)
    in_set = RateLimiter(policy=[Policy(name="per_second", limit=10, window=1), day], store=store, clock=clock)
    alone.check("u", cost=3)
    d = in_set.check("u")
    assert d.policy == "per_day" and d.remaining == 1
    sync_client.script_flush()
    loads = store.counters.script_loads
    assert in_set.check("u").remaining == 0
    assert store.counters.script_loads == loads + 1
    assert not in_set.check("u").allowed
    assert alone.peek("u").remaining == 0
    in_set.clear()
    assert stored(sync_client, store.key("per_day:fw", "u")) is None


def test_the_empty_identity_is_refused_on_a_cluster(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix)
    rules = [compile_policy(Policy(name=n, limit=5, window=60)) for n in ("a", "b")]
    if store.cluster:
        with pytest.raises(ValueError, match="non-empty identity"):
            store.consume_set("", rules, T0, [1, 1])
    else:
        assert all(o.allowed for o in store.consume_set("", rules, T0, [1, 1]))
        store.clear()


PAIRS = [("fixed_window", "sliding_window"), ("token_bucket", "gcra"), ("leaky_bucket", "fixed_window")]


@pytest.mark.parametrize("pair", PAIRS, ids=["+".join(p) for p in PAIRS])
def test_many_threads_on_one_identity(pair: tuple[str, str], sync_client: Any, prefix: str) -> None:
    """8 threads x 40 checks on one identity, the binding policy at 150: 150 admitted, each policy's units used
    equal to the admissions (nothing taken for a rejected request)."""
    limiter = RateLimiter(
        policy=[
            Policy(name="tight", limit=150, window=86_400, algorithm=pair[0]),
            Policy(name="loose", limit=400, window=86_400, algorithm=pair[1]),
        ],
        store=RedisStore(sync_client, prefix=prefix),
    )
    admitted = [0] * 8

    def worker(i: int) -> None:
        for _ in range(40):
            admitted[i] += limiter.check("hot").allowed

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 150
    p = limiter.peek("hot").policies
    assert p is not None and [x.remaining for x in p] == [0, 400 - 150]
    assert limiter.stats().blocked == 8 * 40 - 150
    limiter.clear()


async def test_many_tasks_on_one_identity(async_client: Any, prefix: str) -> None:
    limiter = RateLimiter(
        policy=[
            Policy(name="tight", limit=150, window=86_400, algorithm="sliding_window"),
            Policy(name="loose", limit=400, window=86_400, algorithm="token_bucket", mode="shadow"),
        ],
        store=AsyncRedisStore(async_client, prefix=prefix),
        timeout=5000,
    )
    gate = asyncio.Semaphore(50)  # below redis-py's asyncio pool cap

    async def one() -> Any:
        async with gate:
            return await limiter.acheck("hot")

    results = await asyncio.gather(*(one() for _ in range(300)))
    assert sum(d.allowed for d in results) == 150
    p = (await limiter.apeek("hot")).policies
    assert p is not None and [x.remaining for x in p] == [0, 400 - 150]
    assert (await limiter.astats()).allowed == 150
    await limiter.aclear()


# ---- the blocked-key cache ----------------------------------------------------------------------------------


def test_the_cache_option_is_validated(sync_client: Any) -> None:
    for bad in ("yes", 0, {"max_keys": 0}, {"max_keys": 2.5}, {"size": 3}):
        with pytest.raises(HaltConfigError) as e:
            RedisStore(sync_client, blocked_key_cache=bad)  # type: ignore[arg-type]
        assert e.value.code == "HALT_INVALID_BLOCKED_KEY_CACHE"
    assert RedisStore(sync_client, blocked_key_cache=True).cache is not None
    assert RedisStore(sync_client).cache is None


# Rates that are powers of two (units per ms): every sum of the bucket algorithms is exact, so a state stepped
# once over a long gap equals one stepped twice over its halves, and answers can be compared exactly.
EXACT = {
    "token_bucket": Policy(name="tb", limit=4, window=1.024, burst=6, algorithm="token_bucket"),
    "gcra": Policy(name="gc", limit=4, window=1.024, burst=6, algorithm="gcra"),
    "fixed_window": Policy(name="fw", limit=5, window=1, algorithm="fixed_window"),
    "sliding_window": Policy(name="sw", limit=5, window=1, algorithm="sliding_window", precision=4),
    "leaky_bucket": Policy(name="lb", limit=4, window=1.024, burst=6, algorithm="leaky_bucket"),
    "cooldown": Policy(name="cd", limit=3, window=1, algorithm="fixed_window", block_duration=2),
}


@pytest.mark.parametrize("name", list(EXACT))
def test_a_cached_answer_is_what_redis_would_say(name: str, sync_client: Any, prefix: str) -> None:
    """An abusive client's random traffic through a store with the cache; each answer the cache gives is also
    asked of Redis (a store without the cache, on the same key, at the same time): the two are the same."""
    rule = compile_policy(EXACT[name])
    cached = RedisStore(sync_client, prefix=prefix, blocked_key_cache=True)
    plain = RedisStore(sync_client, prefix=prefix)
    rng = random.Random(name)
    now = T0
    hits = 0
    for i in range(400):
        now += rng.choice([0, 0, 1, 7, 40, 150, 600])
        cost = rng.choice([1, 1, 1, 2, 7])  # 7: above capacity
        peek = rng.random() < 0.1
        before = cached.counters.cache_hits
        o = cached.peek(rule.ns, "k", rule, now) if peek else cached.consume(rule.ns, "k", rule, now, cost)
        if cached.counters.cache_hits > before:
            hits += 1
            assert not o.allowed
            want = plain.peek(rule.ns, "k", rule, now) if peek else plain.consume(rule.ns, "k", rule, now, cost)
            assert outcome_fields(o) == outcome_fields(want), f"step {i}"
            assert o.expires_at_ms == want.expires_at_ms
    assert hits > 50
    cached.clear()


def test_the_cache_saves_round_trips_and_forgets_on_reset(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix, blocked_key_cache={"max_keys": 2})
    clock = FakeClock(T0)
    limiter = RateLimiter(
        policy=Policy(name="p", limit=2, window=60, algorithm="fixed_window"), store=store, clock=clock
    )
    ds = [limiter.check("abuser") for _ in range(100)]
    assert sum(d.allowed for d in ds) == 2
    assert store.counters.calls == 3 and store.counters.cache_hits == 97
    assert ds[-1].retry_after == ds[2].retry_after and ds[-1].reason == "limit"
    limiter.reset("abuser")
    assert limiter.check("abuser").allowed
    # Bounded: at most max_keys entries.
    for k in ("a", "b", "c"):
        for _ in range(3):
            limiter.check(k)
    assert store.cache is not None and len(store.cache) == 2
    limiter.clear()
    assert len(store.cache) == 0
    # Once the window rolls, Redis decides again (the cached state admits: the entry goes).
    for _ in range(3):
        limiter.check("a")
    clock.advance(60_000)
    assert limiter.check("a").allowed


def test_a_limit_rejection_with_a_cooldown_goes_to_redis(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix, blocked_key_cache=True)
    clock = FakeClock(T0)
    limiter = RateLimiter(
        policy=Policy(name="p", limit=1, window=1, algorithm="fixed_window", block_duration=10),
        store=store,
        clock=clock,
    )
    limiter.check("u")
    first = limiter.check("u")  # limit: starts the cooldown in Redis
    assert first.reason == "limit" and store.counters.cache_hits == 0
    calls = store.counters.calls
    then = limiter.check("u")  # cooldown: answered from the state Redis returned
    assert then.reason == "cooldown" and store.counters.calls == calls and store.counters.cache_hits == 1
    clock.advance(10_000)
    assert limiter.check("u").allowed
    limiter.clear()


def test_another_policy_of_the_same_name_does_not_reuse_entries(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix, blocked_key_cache=True)
    small = compile_policy(Policy(name="p", limit=1, window=60))
    big = compile_policy(Policy(name="p", limit=100, window=60))
    store.consume(small.ns, "u", small, T0, 1)
    assert not store.consume(small.ns, "u", small, T0, 1).allowed
    hits, calls = store.counters.cache_hits, store.counters.calls
    store.consume(big.ns, "u", big, T0, 1)  # the signature differs: Redis decides
    assert (store.counters.cache_hits, store.counters.calls) == (hits, calls + 1)
    store.clear()


def test_server_time_offsets_the_cached_state(sync_client: Any, prefix: str) -> None:
    """With Redis's clock the state is in the server's time frame; a limiter clock hours off changes nothing."""
    store = RedisStore(sync_client, prefix=prefix, time="server", blocked_key_cache=True)
    limiter = RateLimiter(
        policy=Policy(name="p", limit=1, window=60, algorithm="fixed_window"), store=store, clock=lambda: 5
    )
    limiter.check("u")
    a = limiter.check("u")
    b = limiter.check("u")
    assert store.counters.cache_hits == 1 and not b.allowed
    assert abs(b.reset_at - a.reset_at) <= 1 and b.reset_at > 1_700_000_000
    limiter.clear()


async def test_the_async_store_uses_the_cache(async_client: Any, prefix: str) -> None:
    store = AsyncRedisStore(async_client, prefix=prefix, blocked_key_cache=True)
    limiter = RateLimiter(policy=Policy(name="p", limit=3, window=60), store=store, clock=FakeClock(T0))
    ds = [await limiter.acheck("abuser") for _ in range(50)]
    assert sum(d.allowed for d in ds) == 3
    assert store.counters.cache_hits == 46 and store.counters.calls == 4
    await limiter.areset("abuser")
    assert (await limiter.acheck("abuser")).allowed
    await limiter.aclear()


def test_set_checks_are_not_answered_by_the_cache(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix, blocked_key_cache=True)
    rules: list[Rule] = [compile_policy(Policy(name=n, limit=1, window=60)) for n in ("a", "b")]
    for _ in range(5):
        store.consume_set("u", rules, T0, [1, 1])
    assert store.counters.cache_hits == 0 and store.counters.calls == 5
    store.clear()


# ---- failover ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fallback", "open", "closed"])
def test_a_set_while_redis_is_unreachable(mode: str) -> None:
    """'fallback' decides the set in memory (atomically); 'open' and 'closed' answer for the first enforced policy;
    a limiter whose every policy is shadow never rejects, even with 'closed'."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    policies = [
        Policy(name="trial", limit=1, window=60, mode="shadow"),
        Policy(name="per_second", limit=5, window=1, algorithm="fixed_window"),
        Policy(name="per_minute", limit=2, window=60, algorithm="fixed_window"),
    ]
    limiter = RateLimiter(policy=policies, store=RedisStore(dead), on_store_error=mode, clock=FakeClock(T0))
    ds = [limiter.check("a") for _ in range(3)]
    if mode == "fallback":
        assert [d.allowed for d in ds] == [True, True, False] and ds[2].policy == "per_minute"
        assert ds[0].policies is not None and limiter.stats().shadow_blocked == 2
    else:
        assert all(d.reason == "store_error" and d.policy == "per_second" for d in ds)
        assert all(d.allowed == (mode == "open") for d in ds)
    shadow = RateLimiter(policy=policies, store=RedisStore(dead), on_store_error="closed", mode="shadow")
    assert all(shadow.check("a").allowed for _ in range(3))
    dead.close()


async def test_an_async_set_on_a_dead_redis_takes_the_failure_policy() -> None:
    import redis.asyncio
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff

    dead = redis.asyncio.Redis(port=1, retry=AsyncRetry(NoBackoff(), 0))
    limiter = RateLimiter(
        policy=[Policy(name="a", limit=1, window=60), Policy(name="b", limit=2, window=60)],
        store=AsyncRedisStore(dead),
        on_store_error="fallback",
        clock=FakeClock(T0),
    )
    assert [(await limiter.acheck("u")).allowed for _ in range(2)] == [True, False]
    assert (await limiter.apeek("u")).policies is not None
    await dead.aclose()
