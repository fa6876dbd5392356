"""The store-conformance suite: one body of tests that every store passes, sync or asyncio (a port of
packages/typescript/test/stores/conformance.ts, limit sets included).

A store's test module describes its store with a ``StoreHarness`` and takes the tests in with two lines::

    from tests.stores.conformance import *  # noqa: F403  (the test functions)

    @pytest.fixture(scope="module", params=["sync", "async"])
    def harness(request) -> StoreHarness:
        return StoreHarness(name=..., create=..., inspect=..., expire=...)

Every test gets a store of its own from ``harness.create()`` (in the test's event loop, so asyncio stores work) and
policy names no other test uses, so test modules can share a server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect as _inspect
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from halt import Policy, RateLimiter
from halt.core.algorithms.kernel import evaluate
from halt.core.failover import StoreTimeoutError
from halt.core.policy import Rule, compile_policy
from halt.core.sets import evaluate_set
from halt.core.types import Outcome
from halt.stores.cas import AsyncCasStore, CasStore
from tests.support import outcome_fields, set_vector_cases, to_policy, to_set_policies, vector_cases

ALGORITHMS = ["token_bucket", "gcra", "fixed_window", "sliding_window", "leaky_bucket"]
T0 = 1_700_000_000_000
PACKAGE = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass
class Inspected:
    """What the store holds for one key: the state as stored (when the store can show it), and milliseconds until the
    key expires (when the store can tell)."""

    state: Optional[list[float]] = None
    ttl_ms: Optional[float] = None


MaybeAwaitable = Union[T, Awaitable[T]]


@dataclass
class StoreHarness:
    """How the suite drives one kind of store. Every callable may be a plain function or a coroutine function."""

    name: str
    #: A new store over a key space of its own (e.g. a unique prefix or table).
    create: Callable[[], MaybeAwaitable[Any]]
    #: What the store holds for a key (None: nothing).
    inspect: Callable[[Any, str, str], MaybeAwaitable[Optional[Inspected]]]
    #: Let the store drop what expired by ``at`` (epoch ms): real time passes for a server, a cleanup runs.
    expire: Callable[[Any, float], MaybeAwaitable[None]]
    #: Release what ``create()`` opened.
    dispose: Optional[Callable[[Any], MaybeAwaitable[None]]] = None
    #: Milliseconds the store keeps a key past its expiry (the vectors run on frozen times while servers expire keys
    #: in real time: a grace keeps a 1 ms TTL from expiring between steps).
    grace_ms: int = 0
    #: How late the server drops an expired key, at most (Memcached counts whole seconds).
    expiry_lag_ms: int = 0
    #: False when the server as tested never drops expired keys by itself: the suite then checks that an expired key
    #: decides exactly as a fresh one, instead of its absence.
    drops_expired: bool = True
    #: False when the server does not isolate a conditional write from concurrent ones (FerretDB v1): the concurrency
    #: test then asserts no errors and no fewer admissions than the limit.
    atomic: bool = True
    #: Make the server not answer for ``ms`` (blocking or a coroutine; run alongside a check). None: cannot hang.
    stall: Optional[Callable[[Any, float], MaybeAwaitable[None]]] = None
    #: The limiter ``timeout`` (ms) the stall test expects to bound a check, or, for a synchronous store, the store's
    #: own timeout (its driver's), which the harness's ``create()`` must have set.
    stall_timeout_ms: float = 100
    #: Concurrency across OS processes: ``("module:function", args)``; each worker (tests/stores/worker.py) calls
    #: ``function(*args)`` for a ``(store, close)`` pair. None: the concurrent checks run in this process.
    worker: Optional[tuple[str, list[str]]] = None
    #: Extra keyword arguments for the limiter of the timeout test.
    extra: dict[str, Any] = field(default_factory=dict)


async def maybe(x: MaybeAwaitable[T]) -> T:
    """Await ``x`` if it is awaitable."""
    if _inspect.isawaitable(x):
        return await x  # type: ignore[no-any-return]
    return x  # type: ignore[return-value]


def unique(label: str) -> str:
    """A policy name no other test (or test file) uses."""
    return f"{label}-{uuid.uuid4().hex[:8]}"


def fields(o: Outcome) -> dict[str, Any]:
    """Every field of an outcome, expiry included."""
    return {f: getattr(o, f) for f in Outcome.__slots__}


async def call(store: Any, rule: Rule, id: str, t: float, cost: float, peek: bool = False) -> Outcome:
    return await maybe(store.peek(rule.ns, id, rule, t) if peek else store.consume(rule.ns, id, rule, t, cost))


@pytest.fixture
async def store(harness: StoreHarness) -> AsyncIterator[Any]:
    s = await maybe(harness.create())
    yield s
    if harness.dispose is not None:
        await maybe(harness.dispose(s))


# ---- spec vectors -----------------------------------------------------------------------------------------------

CASES = vector_cases()


@pytest.mark.parametrize("pair", CASES, ids=[f"{a}: {c['name']}" for a, c in CASES])
async def test_conformance_vector(pair: tuple[str, dict[str, Any]], harness: StoreHarness, store: Any) -> None:
    """Every spec vector with explicit times: each outcome as the vector's and the pure function's (expiry included),
    and the stored state exactly the model's (no rounding on the way through storage)."""
    algorithm, case = pair
    rule = compile_policy(dataclasses.replace(to_policy(algorithm, case), name=unique("vec")))
    model: Optional[list[float]] = None
    for i, step in enumerate(case["steps"]):
        peek = bool(step.get("peek"))
        cost = 0 if peek else step.get("cost", 1)
        o = await call(store, rule, "k", step["t"], cost, peek)
        want = {k: v for k, v in step["expect"].items() if k != "state"}
        assert outcome_fields(o) == want, f"step {i} at t={step['t']}"
        m_state, m_out = evaluate(model, step["t"], cost, rule)
        assert fields(o) == fields(m_out), f"step {i}: outcome as the pure function's"
        writes = not peek and m_out.reason != "cooldown"
        if not peek:
            model = m_state
        held = await maybe(harness.inspect(store, rule.ns, "k"))
        if model is None:
            assert held is None, f"step {i}: a peek of a missing key stores nothing"
        elif held is not None and held.state is not None:
            assert held.state == model, f"step {i}: stored state"
        if writes and held is not None and held.ttl_ms is not None:
            ttl = max(1, math.ceil(o.expires_at_ms - step["t"])) + harness.grace_ms
            assert ttl - 5000 < held.ttl_ms <= ttl, f"step {i}: ttl"


# ---- limit sets --------------------------------------------------------------------------------------------------

SET_CASES = set_vector_cases()


async def consume_set(store: Any, rules: list[Rule], id: str, t: float, costs: list[float]) -> list[Outcome]:
    return await maybe(store.consume_set(id, rules, t, costs))


@pytest.mark.parametrize("case", SET_CASES, ids=[c["name"] for c in SET_CASES])
async def test_conformance_set_vector(case: dict[str, Any], harness: StoreHarness, store: Any) -> None:
    """Every limit-set vector with explicit times: each policy's outcome as the vector's and ``evaluate_set``'s
    (expiry included), and the stored states the model's (a policy with no state yet has no key)."""
    rules = [compile_policy(p) for p in to_set_policies(case, f"{unique('set')}-")]
    model: list[Optional[list[float]]] = [None] * len(rules)
    for i, step in enumerate(case["steps"]):
        costs = [step["cost"]] * len(rules)
        outcomes = await consume_set(store, rules, "k", step["t"], costs)
        for j, want in enumerate(step["expect"]["policies"]):
            assert outcome_fields(outcomes[j]) == {k: v for k, v in want.items() if k != "state"}, f"step {i}, {j}"
        m = evaluate_set(model, step["t"], costs, rules)
        assert [fields(o) for o in outcomes] == [fields(o) for o in m.outcomes], f"step {i}: as evaluate_set's"
        model = [s if n is None else n for s, n in zip(model, m.states)]
        for j, rule in enumerate(rules):
            held = await maybe(harness.inspect(store, rule.ns, "k"))
            if model[j] is None:
                assert held is None, f"step {i}, policy {j}: nothing stored"
            elif held is not None and held.state is not None:
                assert held.state == model[j], f"step {i}, policy {j}: stored state"


def random_sets(seed: int = 20261201, rounds: int = 4) -> list[tuple[list[Rule], list[tuple[float, list[float]]]]]:
    """Seeded random limit sets (2-3 policies: mixed algorithms, cooldowns, precisions, shadow and shaping ones) and
    30 steps of traffic for each: ``(rules, [(t, costs)])``."""
    rng = random.Random(seed)
    out = []
    for _ in range(rounds):
        tag = unique("rset")
        policies = []
        for i in range(2 + rng.randrange(2)):
            p: dict[str, Any] = {
                "name": f"{tag}-{i}",
                "algorithm": ALGORITHMS[rng.randrange(5)],
                "limit": 1 + rng.randrange(6),
                "window": [1, 2.5, 10][rng.randrange(3)],
            }
            if rng.randrange(3) == 0:
                p["block_duration"] = 1 + rng.randrange(3)
            if rng.randrange(2) == 0:
                p["precision"] = 1 + rng.randrange(4)
            if rng.randrange(4) == 0:
                p["mode"] = "shadow"
            if rng.randrange(3) == 0:
                p["leaky_mode"] = "shaping"
            policies.append(Policy(**p))
        rules = [compile_policy(p) for p in policies]
        t = float(T0)
        steps = []
        for _ in range(30):
            t += [0, 7, 250, 900, 3000][rng.randrange(5)]
            steps.append((t, [float(rng.randrange(3)) for _ in rules]))
        out.append((rules, steps))
    return out


async def test_conformance_sets_on_seeded_random_traffic_decide_as_evaluate_set(
    harness: StoreHarness, store: Any
) -> None:
    """Mixed algorithms, cooldowns, shaping and shadow policies: every outcome as ``evaluate_set``'s."""
    for round_, (rules, steps) in enumerate(random_sets()):
        model: list[Optional[list[float]]] = [None] * len(rules)
        for i, (t, costs) in enumerate(steps):
            got = await consume_set(store, rules, "k", t, costs)
            want = evaluate_set(model, t, costs, rules)
            assert [fields(o) for o in got] == [fields(o) for o in want.outcomes], f"round {round_} step {i}"
            model = [m if n is None else n for m, n in zip(model, want.states)]


# ---- peek, reset, clear -----------------------------------------------------------------------------------------


async def test_conformance_peek_reads_without_writing(harness: StoreHarness, store: Any) -> None:
    rule = compile_policy(Policy(name=unique("peek"), limit=3, window=60))
    o = await call(store, rule, "a", T0, 0, True)
    assert (o.allowed, o.remaining) == (True, 3)
    assert await maybe(harness.inspect(store, rule.ns, "a")) is None
    await call(store, rule, "a", T0, 2)
    before = await maybe(harness.inspect(store, rule.ns, "a"))
    assert before is not None
    o = await call(store, rule, "a", T0 + 10, 0, True)
    assert (o.allowed, o.remaining) == (True, 1)
    after = await maybe(harness.inspect(store, rule.ns, "a"))
    assert after is not None and after.state == before.state


async def test_conformance_reset_forgets_one_key(harness: StoreHarness, store: Any) -> None:
    rule = compile_policy(Policy(name=unique("reset"), limit=1, window=60))
    for id in ("a", "b"):
        await call(store, rule, id, T0, 1)
    assert not (await call(store, rule, "a", T0, 1)).allowed
    await maybe(store.reset(rule.ns, "a"))
    assert (await call(store, rule, "a", T0, 1)).allowed
    assert not (await call(store, rule, "b", T0, 1)).allowed


async def test_conformance_clear_one_namespace_or_all(harness: StoreHarness, store: Any) -> None:
    tag = unique("clr")
    star = compile_policy(Policy(name=f"{tag}*[x]?", limit=1, window=60))
    other = compile_policy(Policy(name=f"{tag}zz[x]?", limit=1, window=60))
    gcra = compile_policy(Policy(name=f"{tag}*[x]?", limit=1, window=60, algorithm="gcra"))
    for r in (star, other, gcra):
        await call(store, r, "id", T0, 1)
    await maybe(store.clear(star.ns))
    assert await maybe(harness.inspect(store, star.ns, "id")) is None
    assert await maybe(harness.inspect(store, other.ns, "id")) is not None
    assert await maybe(harness.inspect(store, gcra.ns, "id")) is not None
    assert (await call(store, star, "id", T0, 1)).allowed
    assert not (await call(store, other, "id", T0, 1)).allowed
    await maybe(store.clear())
    for r in (star, other, gcra):
        assert await maybe(harness.inspect(store, r.ns, "id")) is None


# ---- expiry -----------------------------------------------------------------------------------------------------


async def _decides_fresh(store: Any, rule: Rule, id: str, at: float) -> None:
    """Past its expiry a key decides exactly as a key never seen, whether or not the server has dropped it yet."""
    got = await call(store, rule, id, at, 0, True)
    assert outcome_fields(got) == outcome_fields(evaluate(None, at, 0, rule)[1]), f"{id} at {at}"


async def test_conformance_an_idle_key_is_dropped_once_fresh(harness: StoreHarness, store: Any) -> None:
    rule = compile_policy(Policy(name=unique("exp"), limit=2, window="300ms"))
    await call(store, rule, "warm", T0, 0, True)  # connected first: the key's TTL starts right after ``now``
    now = int(time.time() * 1000)
    o = await call(store, rule, "idle", now, 1)
    assert o.expires_at_ms == now + 150
    held = await maybe(harness.inspect(store, rule.ns, "idle"))
    assert held is not None
    if held.ttl_ms is not None:
        assert held.ttl_ms <= 150 + harness.grace_ms + harness.expiry_lag_ms
    await maybe(harness.expire(store, o.expires_at_ms + harness.grace_ms + harness.expiry_lag_ms))
    if harness.drops_expired:
        assert await maybe(harness.inspect(store, rule.ns, "idle")) is None
    await _decides_fresh(store, rule, "idle", o.expires_at_ms)


async def test_conformance_a_blocked_key_lives_until_its_cooldown_ends(harness: StoreHarness, store: Any) -> None:
    rule = compile_policy(Policy(name=unique("expb"), limit=1, window="100ms", block_duration="700ms"))
    await call(store, rule, "warm", T0, 0, True)
    now = int(time.time() * 1000)
    await call(store, rule, "b", now, 1)
    o = await call(store, rule, "b", now, 1)
    assert (o.allowed, o.reason, o.expires_at_ms) == (False, "limit", now + 700)
    held = await maybe(harness.inspect(store, rule.ns, "b"))
    if held is not None and held.ttl_ms is not None:
        assert held.ttl_ms > 300 + harness.grace_ms
    await maybe(harness.expire(store, now + 100 + harness.grace_ms))
    assert await maybe(harness.inspect(store, rule.ns, "b")) is not None
    p = await call(store, rule, "b", now + 100, 1, True)
    assert (p.allowed, p.reason) == (False, "cooldown")
    await maybe(harness.expire(store, now + 700 + harness.grace_ms + harness.expiry_lag_ms))
    if harness.drops_expired:
        assert await maybe(harness.inspect(store, rule.ns, "b")) is None
    await _decides_fresh(store, rule, "b", now + 700)


# ---- identities -------------------------------------------------------------------------------------------------

IDS = [
    "",
    " ",
    "ip:203.0.113.7",
    "ip:2001:db8::1",
    "user:ünïcödé",
    "用户:42",
    "emoji:🚦🚦",
    "a" * 10_000,
    "{",
    "}",
    "{}",
    "}{",
    "{tag}",
    "x}y{z",
    "%",
    "%7B",
    "%7D",
    "%25",
    "*",
    "?",
    "[a-z]",
    "\\",
    "line\nbreak",
    "tab\tand\0nul",
    ":",
    "::{}::",
    '"quoted"',
    "'single'",
]


async def test_conformance_every_identity_has_a_counter_of_its_own(harness: StoreHarness, store: Any) -> None:
    rule = compile_policy(Policy(name=unique("ids"), limit=1, window=60))
    for id in IDS:
        assert (await call(store, rule, id, T0, 1)).allowed, repr(id)
    for id in IDS:
        assert not (await call(store, rule, id, T0, 1)).allowed, repr(id)
    await maybe(store.reset(rule.ns, "{"))
    assert (await call(store, rule, "{", T0, 1)).allowed
    assert not (await call(store, rule, "%7B", T0, 1)).allowed
    await maybe(store.clear(rule.ns))
    for id in IDS:
        assert await maybe(harness.inspect(store, rule.ns, id)) is None, repr(id)


async def test_conformance_policy_names_with_odd_characters_keep_apart(harness: StoreHarness, store: Any) -> None:
    tag = unique("ns")
    rules = [compile_policy(Policy(name=n, limit=1, window=60)) for n in (f"{tag}{{a}}", f"{tag}%7Ba%7D", f"{tag}:x")]
    rules.append(compile_policy(Policy(name=f"{tag}ü", limit=1, window=60)))
    for r in rules:
        assert (await call(store, r, "id", T0, 1)).allowed, r.name
    for r in rules:
        assert not (await call(store, r, "id", T0, 1)).allowed, r.name


# ---- hostile programmatic input ---------------------------------------------------------------------------------

HOSTILE_IDS = ["'; DROP TABLE halt; --", "*?[]{}", "\\x00\0", "KEYS *\r\nFLUSHALL", "$where", "%{%s}", "🦄" * 60]
_step = st.fixed_dictionaries(
    {
        "dt": st.one_of(st.integers(0, 20_000), st.integers(0, 20_000), st.integers(-5_000, 0)),
        "cost": st.one_of(st.just(0), st.just(1), st.floats(0.001, 4), st.sampled_from(["capacity", "over", "huge"])),
        "peek": st.booleans(),
        "swap": st.booleans(),
    }
)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_conformance_hostile_input_decides_as_the_pure_function(algorithm: str, harness: StoreHarness) -> None:
    """Random sequences of fractional, zero, exact-capacity, over-capacity and huge costs, peeks and time steps
    (backwards ones too), on keys full of Redis, SQL and glob syntax, with the policy swapped mid-way for one of the
    same name and algorithm but other numbers (sliding window: another state layout). Every field as the pure
    function's, so no input ever corrupts a stored state."""

    async def run(steps: list[dict[str, Any]], id: str) -> None:
        s = await maybe(harness.create())
        try:
            name = unique("hostile")
            rules = [
                compile_policy(Policy(name=name, algorithm=algorithm, limit=5, window=10, burst=7, precision=4)),
                compile_policy(Policy(name=name, algorithm=algorithm, limit=3, window=10, burst=3, precision=5)),
            ]
            t, r = T0, 0
            model: Optional[list[float]] = None
            for i, step in enumerate(steps):
                t = max(T0, t + step["dt"])
                if step["swap"]:
                    r = 1 - r
                rule = rules[r]
                c = step["cost"]
                cost = (
                    0
                    if step["peek"]
                    else rule.capacity
                    if c == "capacity"
                    else rule.capacity + 0.5
                    if c == "over"
                    else 1e15
                    if c == "huge"
                    else c
                )
                o = await call(s, rule, id, t, cost, step["peek"])
                m_state, m_out = evaluate(model, t, cost, rule)
                assert fields(o) == fields(m_out), f"step {i}: {step}"
                assert 0 <= o.remaining <= rule.capacity
                if not step["peek"]:
                    model = m_state
        finally:
            if harness.dispose is not None:
                await maybe(harness.dispose(s))

    @settings(
        max_examples=int(os.environ.get("HALT_HOSTILE_RUNS", "8")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(st.lists(_step, min_size=1, max_size=12), st.sampled_from(HOSTILE_IDS))
    def prop(steps: list[dict[str, Any]], id: str) -> None:
        asyncio.run(run(steps, id))

    prop()


# ---- a store call that times out --------------------------------------------------------------------------------


async def test_conformance_a_call_that_times_out_takes_the_failure_policy(harness: StoreHarness, store: Any) -> None:
    """The server stalls: the check is answered by the failure policy after the timeout (the limiter's for an asyncio
    store, the store's driver timeout for a synchronous one), with no exception; the next call goes to the store."""
    if harness.stall is None:
        pytest.skip(f"{harness.name} cannot be made to hang")
    errors: list[Any] = []

    class Errors:
        def on_error(self, event: Any) -> None:
            errors.append(event.error)

    timeout = harness.stall_timeout_ms
    policy = Policy(name=unique("slow"), limit=5, window=60)
    warm = compile_policy(policy)
    await call(store, warm, "warm", T0, 0, True)  # connected (a Cluster discovered, scripts loaded) before the clock
    limiter = RateLimiter(
        store=store,
        policy=policy,
        timeout=timeout,
        retry_store_after=50,
        on_store_error="closed",
        telemetry=Errors(),
        **harness.extra,
    )
    assert (await limiter.acheck("k")).allowed
    stall_ms = max(800, timeout * 4)
    stalled = asyncio.ensure_future(_in_thread_or_loop(harness.stall, store, stall_ms))
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    d = await limiter.acheck("k")
    took = (time.perf_counter() - t0) * 1000
    assert (d.allowed, d.reason) == (False, "store_error")
    assert timeout * 0.9 <= took < timeout + 600, took  # the timeout plus room for a busy machine
    if not store.synchronous:
        assert isinstance(errors[0], StoreTimeoutError)
    assert errors, "telemetry saw the error"
    await stalled
    # Recovery is automatic: the store answers again within moments (a Cluster client may rediscover it first).
    for _ in range(40):
        await asyncio.sleep(0.06)
        after = await limiter.acheck("k")
        if after.reason is None:
            break
    assert (after.allowed, after.reason) == (True, None), errors[1:]
    assert not limiter.store_down


async def _in_thread_or_loop(fn: Any, store: Any, ms: float) -> None:
    if asyncio.iscoroutinefunction(fn):
        await fn(store, ms)
    else:
        await asyncio.get_running_loop().run_in_executor(None, fn, store, ms)


# ---- concurrency ------------------------------------------------------------------------------------------------


class Worker:
    """One worker process (tests/stores/worker.py) that builds the store and runs checks on command."""

    def __init__(self, factory: str, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.stores.worker", factory, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PACKAGE,
        )

    def ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"worker: {line!r}"

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "worker exited during a run"
        return json.loads(line)  # type: ignore[no-any-return]

    def exit(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def workers(harness: StoreHarness) -> Any:
    if harness.worker is None:
        yield []
        return
    factory, args = harness.worker
    ws = [Worker(factory, args) for _ in range(4)]
    try:
        for w in ws:
            w.ready()
        yield ws
    finally:
        for w in ws:
            w.exit()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_conformance_concurrency_admits_exactly_the_limit(
    algorithm: str, harness: StoreHarness, store: Any, workers: list[Worker]
) -> None:
    """4 OS processes (or, for a store of one process, 4 groups here) x 100 concurrent checks on one key, limit 150:
    exactly 150 admitted, and nothing left."""
    policy = {"name": unique(f"conc-{algorithm}"), "algorithm": algorithm, "limit": 150, "window": 3600, "burst": 150}
    rule = compile_policy(Policy(**policy))
    if workers:
        at = time.time() + 0.5  # start barrier: every worker fires its 100 checks at this instant
        results: list[dict[str, Any]] = [{}] * 4

        def one(i: int) -> None:
            results[i] = workers[i].run({"policy": policy, "at": at, "now": T0, "n": 100})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            assert r["errors"] == 0, r.get("first_error")
        admitted = [r["admitted"] for r in results]
        overlap = min(r["t1"] for r in results) - max(r["t0"] for r in results)
        conflicts = [r.get("conflicts") for r in results]
        print(
            f"{harness.name} {algorithm}: admitted per process {'+'.join(map(str, admitted))}; all 4 in flight "
            f"together for {overlap * 1000:.0f} ms; conflicts per process {conflicts}"
        )
    else:
        admitted = await _groups_here(store, rule)
    total = sum(admitted)
    if harness.atomic:
        assert total == 150
        after = await call(store, rule, "hot", T0, 0, True)
        assert after.remaining == 0
    else:
        if total > 150:
            print(f"{harness.name} {algorithm}: {total} admitted for a limit of 150 (not isolated)")
        assert total >= 150


# Two policies in one decision: the binding one admits exactly its limit, and the other one gives exactly one unit per
# admitted request (none for a rejected one). A compare-and-set store may take units for a request it then rejects
# when another process wins a race between its writes: it counts them (docs/sets.md).
SET_PAIRS = [
    ("token_bucket", 150, "fixed_window", 220),
    ("sliding_window", 260, "gcra", 150),
    ("leaky_bucket", 150, "token_bucket", 300),
]


@pytest.mark.parametrize("pair", SET_PAIRS, ids=[f"{a} {la} + {b} {lb}" for a, la, b, lb in SET_PAIRS])
async def test_conformance_set_concurrency_admits_the_binding_limit_and_takes_nothing_for_a_rejection(
    pair: tuple[str, int, str, int], harness: StoreHarness, store: Any, workers: list[Worker]
) -> None:
    a, la, b, lb = pair
    tag = unique("cset")
    policies = [
        {"name": f"{tag}-a", "algorithm": a, "limit": la, "window": 3600, "burst": la},
        {"name": f"{tag}-b", "algorithm": b, "limit": lb, "window": 3600, "burst": lb},
    ]
    rules = [compile_policy(Policy(**p)) for p in policies]
    leaked = [0.0, 0.0]
    if workers:
        at = time.time() + 0.5
        results: list[dict[str, Any]] = [{}] * 4

        def one(i: int) -> None:
            results[i] = workers[i].run({"policy": policies, "at": at, "now": T0, "n": 100})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            assert r["errors"] == 0, r.get("first_error")
        admitted = sum(r["admitted"] for r in results)
        leaked = [sum(r.get("leaked", {}).get(rule.ns, 0) for r in results) for rule in rules]
    else:
        before = dict(getattr(getattr(store, "counters", None), "set_leaked", {}))
        admitted = sum(await _groups_here(store, rules))
        after_leaked = getattr(getattr(store, "counters", None), "set_leaked", {})
        leaked = [after_leaked.get(r.ns, 0) - before.get(r.ns, 0) for r in rules]
    after = [await call(store, r, "hot", T0, 0, True) for r in rules]
    used = [r.capacity - o.remaining for r, o in zip(rules, after)]
    print(f"{harness.name} set {a}+{b}: admitted {admitted}; units used {used}; taken for rejected requests {leaked}")
    if not harness.atomic:
        assert admitted >= 150
        return
    # No policy over-admits, and every unit taken is an admitted request's or a counted leak.
    for i, r in enumerate(rules):
        assert used[i] <= r.capacity
        assert used[i] == admitted + leaked[i], f"{r.name}: units used"
    if leaked == [0, 0]:
        assert admitted == 150
    else:
        assert admitted <= 150
    if not isinstance(store, (CasStore, AsyncCasStore)):  # one atomic step per set: nothing can leak
        assert leaked == [0, 0]


async def _groups_here(store: Any, rule: Union[Rule, list[Rule]]) -> list[int]:
    """4 groups of 100 concurrent checks in this process: asyncio tasks, or threads for a synchronous store. A list of
    rules is a limit set (cost 1 each): a check admits when every policy does."""
    from tests.stores.worker import admits, check

    if not store.synchronous:
        groups = [asyncio.gather(*(check(store, rule, T0) for _ in range(100))) for _ in range(4)]
        return [sum(admits(o) for o in os) for os in await asyncio.gather(*groups)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [[pool.submit(check, store, rule, T0) for _ in range(100)] for _ in range(4)]
        return [sum(admits(f.result()) for f in group) for group in futures]


# The quota and penalty part (it imports from this module, so it comes after every definition above).
from tests.stores.saas_conformance import *  # noqa: E402, F403
from tests.stores.saas_conformance import __all__ as _saas_tests  # noqa: E402

__all__ = [
    *_saas_tests,
    "ALGORITHMS",
    "Inspected",
    "StoreHarness",
    "maybe",
    "random_sets",
    "store",
    "test_conformance_a_blocked_key_lives_until_its_cooldown_ends",
    "test_conformance_a_call_that_times_out_takes_the_failure_policy",
    "test_conformance_an_idle_key_is_dropped_once_fresh",
    "test_conformance_clear_one_namespace_or_all",
    "test_conformance_concurrency_admits_exactly_the_limit",
    "test_conformance_every_identity_has_a_counter_of_its_own",
    "test_conformance_hostile_input_decides_as_the_pure_function",
    "test_conformance_peek_reads_without_writing",
    "test_conformance_policy_names_with_odd_characters_keep_apart",
    "test_conformance_reset_forgets_one_key",
    "test_conformance_set_concurrency_admits_the_binding_limit_and_takes_nothing_for_a_rejection",
    "test_conformance_set_vector",
    "test_conformance_sets_on_seeded_random_traffic_decide_as_evaluate_set",
    "test_conformance_vector",
    "unique",
    "workers",
]
