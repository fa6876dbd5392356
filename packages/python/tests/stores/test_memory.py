"""InMemoryStore: every vector, thread safety under many threads, the key cap, expiry."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from halt import HaltConfigError, InMemoryStore, Policy, RateLimiter
from halt.core.policy import compile_policy
from halt.stores.memory import _Sweeper
from tests.stores.conformance import *  # noqa: F403 (the conformance tests)
from tests.stores.conformance import Inspected, StoreHarness
from tests.support import FakeClock, assert_state, case_id, expected_fields, outcome_fields, to_policy, vector_cases

CASES = vector_cases()


@pytest.fixture(scope="module")
def harness() -> StoreHarness:
    """The conformance suite on the in-memory store (concurrency: threads of this process)."""
    return StoreHarness(
        name="InMemoryStore",
        create=lambda: InMemoryStore(sweep_interval=0),
        dispose=lambda s: s.close(),
        # The suite gives every key a namespace of its own, so a namespace holding a key means that key is held.
        inspect=lambda s, ns, id: Inspected() if s.size(ns) > 0 else None,
        expire=lambda s, at: s.cleanup_expired(at) and None,
    )


@pytest.mark.parametrize("pair", CASES, ids=[case_id(p) for p in CASES])
def test_vector_through_the_store(pair: tuple[str, dict[str, Any]]) -> None:
    algorithm, case = pair
    store = InMemoryStore(sweep_interval=0)
    rule = compile_policy(to_policy(algorithm, case))
    for i, step in enumerate(case["steps"]):
        if step.get("peek"):
            out = store.peek(rule.ns, "k", rule, step["t"])
        else:
            out = store.consume(rule.ns, "k", rule, step["t"], step.get("cost", 1))
        assert outcome_fields(out) == expected_fields(step["expect"]), f"step {i}"
        if "state" in step["expect"]:
            with store._shards[hash("k") % store._n].lock:
                state = store._shards[hash("k") % store._n].data[(rule.ns, "k")]
            assert_state(state, step["expect"]["state"])


@pytest.mark.parametrize("algorithm", ["token_bucket", "gcra", "fixed_window", "sliding_window", "leaky_bucket"])
def test_many_threads_on_one_key_admit_exactly_the_limit(algorithm: str) -> None:
    limiter = RateLimiter(policy=Policy(limit=500, window=3600, algorithm=algorithm), clock=FakeClock())
    admitted = [0] * 16
    barrier = threading.Barrier(16)

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(100):
            if limiter.check("hot").allowed:
                admitted[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 500
    s = limiter.stats()
    assert (s.allowed, s.blocked) == (500, 1100)


def test_many_threads_on_many_keys() -> None:
    limiter = RateLimiter(policy=Policy(limit=10, window=3600), clock=FakeClock())
    barrier = threading.Barrier(8)
    results: list[int] = [0] * 8

    def worker(i: int) -> None:
        barrier.wait()
        for n in range(2000):
            if limiter.check(f"k{n % 100}").allowed:
                results[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 100 * 10
    assert limiter.stats().active_keys == 100


def test_key_count_is_bounded() -> None:
    store = InMemoryStore(max_keys=1000, sweep_interval=0)
    rule = compile_policy(Policy(limit=5, window=3600))
    for i in range(20_000):
        store.consume(rule.ns, f"flood:{i}", rule, 1_700_000_000_000, 1)
        assert store.size() <= 1000
    assert store.size() == 1000
    small = InMemoryStore(max_keys=3, sweep_interval=0)
    for i in range(10):
        small.consume(rule.ns, f"k{i}", rule, 1_700_000_000_000, 1)
    assert small.size() <= 3


def test_idle_keys_are_reclaimed_as_new_ones_arrive() -> None:
    store = InMemoryStore(max_keys=64, sweep_interval=0)  # one key per stripe
    rule = compile_policy(Policy(limit=5, window=1))
    t = 1_700_000_000_000
    store.consume(rule.ns, "old", rule, t, 1)
    assert store.size() == 1
    store.cleanup_expired(t + 199)  # one unit of 5 per second is back after 200 ms
    assert store.size() == 1
    assert store.cleanup_expired(t + 200) == 1
    assert store.size() == 0


def test_layout_change_and_namespaces() -> None:
    store = InMemoryStore(sweep_interval=0)
    a = compile_policy(Policy(name="p", limit=5, window=1, algorithm="sliding_window", precision=4))
    b = compile_policy(Policy(name="p", limit=5, window=1, algorithm="sliding_window", precision=8))
    t = 1_700_000_000_000
    store.consume(a.ns, "k", a, t, 5)
    assert store.consume(b.ns, "k", b, t, 1).remaining == 4  # another layout: a fresh state
    other = compile_policy(Policy(name="q", limit=5, window=1))
    store.consume(other.ns, "k", other, t, 1)
    assert store.size(a.ns) == 1 and store.size(other.ns) == 1 and store.size() == 2
    store.clear(other.ns)
    assert store.size() == 1
    store.reset(a.ns, "k")
    assert store.size() == 0


def test_one_sweep_thread_serves_every_store() -> None:
    stores = [InMemoryStore(sweep_interval=10_000) for _ in range(20)]
    assert sum(t.name == "halt-memory-sweep" for t in threading.enumerate()) == 1
    for s in stores:
        s.close()


def test_the_sweep_removes_expired_keys_at_each_interval() -> None:
    sweeper = _Sweeper()  # driven with explicit times here; the module's one runs on a daemon thread
    store = InMemoryStore(sweep_interval=0)
    sweeper._due[store] = [10.0, 110.0]  # every 10 s, next at t = 110 s (monotonic)
    rule = compile_policy(Policy(limit=5, window=1))
    store.consume(rule.ns, "a", rule, 1_700_000_000_000, 1)
    store.consume(rule.ns, "b", rule, 1_700_000_001_000, 1)  # the store's latest time: "a" has expired
    assert sweeper.sweep_due(109.0) == 110.0 and store.size() == 2
    assert sweeper.sweep_due(110.0) == 120.0 and store.size() == 1
    del store
    assert sweeper.sweep_due(200.0) is None  # a collected store leaves the sweep


def test_options_are_validated() -> None:
    for kw, code in (
        ({"max_keys": 0}, "HALT_INVALID_MAX_KEYS"),
        ({"max_keys": 1.5}, "HALT_INVALID_MAX_KEYS"),
        ({"sweep_interval": -1}, "HALT_INVALID_SWEEP_INTERVAL"),
    ):
        with pytest.raises(HaltConfigError) as e:
            InMemoryStore(**kw)
        assert e.value.code == code
