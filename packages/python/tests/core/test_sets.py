"""Limit sets and shadow mode: every spec/vectors/sets case through evaluate_set and the in-memory store, and the
limiter's handling (policy lists, shadow policies, stats, telemetry, near-limit, headers, resolvers, failover)."""

from __future__ import annotations

import threading
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halt import (
    HaltConfigError,
    InMemoryStore,
    PenaltyConfig,
    PenaltyManager,
    Policy,
    RateLimiter,
    Telemetry,
    compile_policy,
    evaluate_set,
    presets,
)
from halt.core.algorithms import evaluate
from halt.http import BasicRequestView, rate_limit_headers
from tests.stores.conformance import fields, random_sets
from tests.support import FakeClock, assert_state, outcome_fields, set_vector_cases, to_set_policies

CASES = set_vector_cases()
IDS = [c["name"] for c in CASES]
T0 = 1_700_000_000_000


def expect_fields(want: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in want.items() if k != "state"}


def test_there_are_set_vectors_with_shadow_policies() -> None:
    assert len(CASES) >= 10
    assert any(p.get("shadow") for c in CASES for p in c["policies"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vector_through_evaluate_set(case: dict[str, Any]) -> None:
    rules = [compile_policy(p) for p in to_set_policies(case)]
    states: list[Optional[list[float]]] = [None] * len(rules)
    for i, step in enumerate(case["steps"]):
        before = [None if s is None else list(s) for s in states]
        r = evaluate_set(states, step["t"], [step["cost"]] * len(rules), rules)
        assert states == before, "the input states are not modified"
        assert r.allowed == step["expect"]["allowed"], f"step {i}"
        states = [s if n is None else n for s, n in zip(states, r.states)]
        for j, want in enumerate(step["expect"]["policies"]):
            assert outcome_fields(r.outcomes[j]) == expect_fields(want), f"step {i}, policy {j}"
            if want["state"] is None:
                assert states[j] is None, f"step {i}, policy {j}: no state"
            else:
                got = states[j]
                assert got is not None
                assert_state(got, want["state"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vector_through_the_memory_store(case: dict[str, Any]) -> None:
    rules = [compile_policy(p) for p in to_set_policies(case)]
    store = InMemoryStore(sweep_interval=0)
    for i, step in enumerate(case["steps"]):
        outcomes = store.consume_set("k", rules, step["t"], [step["cost"]] * len(rules))
        for j, want in enumerate(step["expect"]["policies"]):
            assert outcome_fields(outcomes[j]) == expect_fields(want), f"step {i}, policy {j}"
        # A policy with no state yet has no key (a missing state stays missing).
        held = [store.size(r.ns) == 1 for r in rules]
        assert held == [w["state"] is not None for w in step["expect"]["policies"]], f"step {i}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vector_through_the_limiter(case: dict[str, Any]) -> None:
    """The limiter's decision: each policy's in ``d.policies``, the binding one describing the set."""
    clock = FakeClock()
    limiter = RateLimiter(policy=to_set_policies(case), clock=clock)
    for i, step in enumerate(case["steps"]):
        clock.now = step["t"]
        d = limiter.check("k", cost=step["cost"])
        assert d.allowed == step["expect"]["allowed"], f"step {i}"
        # One enforced policy alone is a plain check (no ``policies``).
        got = d.policies or [d]
        assert len(got) == len(step["expect"]["policies"])
        for p, want in zip(got, step["expect"]["policies"]):
            assert p.allowed == want["allowed"] and p.remaining == want["remaining"], f"step {i}"
            assert p.retry_after == -(-want["retry_after_ms"] // 1000)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_memory_store_decides_random_sets_as_evaluate_set(seed: int) -> None:
    store = InMemoryStore(sweep_interval=0)
    for rules, steps in random_sets(seed):
        model: list[Optional[list[float]]] = [None] * len(rules)
        for t, costs in steps:
            want = evaluate_set(model, t, costs, rules)
            assert [fields(o) for o in store.consume_set("k", rules, t, costs)] == [fields(o) for o in want.outcomes]
            model = [m if n is None else n for m, n in zip(model, want.states)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3000), st.sampled_from([0, 0.5, 1, 2, 3])), min_size=1, max_size=40),
    st.sampled_from(["token_bucket", "fixed_window", "sliding_window", "gcra", "leaky_bucket"]),
)
def test_one_enforced_policy_decides_as_the_algorithm_alone(steps: list[tuple[int, float]], algorithm: str) -> None:
    rule = compile_policy(Policy(name="p", limit=3, window=2, algorithm=algorithm, cost=0))
    alone: Optional[list[float]] = None
    in_set: Optional[list[float]] = None
    now = T0
    for dt, cost in steps:
        now += dt
        alone, want = evaluate(alone, now, cost, rule)
        r = evaluate_set([in_set], now, [cost], [rule])
        in_set = r.states[0] if r.states[0] is not None else in_set
        assert outcome_fields(r.outcomes[0]) == outcome_fields(want)
        assert r.allowed == want.allowed


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 700), st.sampled_from([1, 2])), min_size=1, max_size=60))
def test_no_policy_ever_admits_beyond_its_limit_and_a_rejection_takes_nothing(steps: list[tuple[int, int]]) -> None:
    """Over random traffic: the units each fixed window took equal the units the set admitted in that window."""
    per_second = compile_policy(Policy(name="s", limit=3, window=1, algorithm="fixed_window"))
    per_ten = compile_policy(Policy(name="t", limit=7, window=10, algorithm="fixed_window"))
    store = InMemoryStore(sweep_interval=0)
    admitted: dict[tuple[str, int], float] = {}
    now = T0
    for dt, cost in steps:
        now += dt
        outcomes = store.consume_set("k", [per_second, per_ten], now, [cost, cost])
        if all(o.allowed for o in outcomes):
            for name, w in (("s", 1000), ("t", 10_000)):
                admitted[(name, now // w)] = admitted.get((name, now // w), 0) + cost
    assert all(v <= (3 if k[0] == "s" else 7) for k, v in admitted.items())


# ---- the limiter --------------------------------------------------------------------------------------------


class Recorder(Telemetry):
    def __init__(self) -> None:
        self.checks: list[Any] = []
        self.blocked: list[Any] = []
        self.near: list[Any] = []

    def on_check(self, event: Any) -> None:
        self.checks.append(event)

    def on_blocked(self, event: Any) -> None:
        self.blocked.append(event)

    def on_near_limit(self, event: Any) -> None:
        self.near.append(event)


def two(clock: FakeClock, **options: Any) -> RateLimiter:
    return RateLimiter(
        policy=[
            Policy(name="per_second", limit=2, window=1, algorithm="fixed_window"),
            Policy(name="per_minute", limit=3, window=60, algorithm="fixed_window"),
        ],
        clock=clock,
        **options,
    )


def test_a_set_admits_only_what_every_policy_admits() -> None:
    clock = FakeClock(T0)
    limiter = two(clock)
    assert [limiter.check("u").allowed for _ in range(3)] == [True, True, False]
    d = limiter.check("u")
    assert (d.policy, d.reason, d.retry_after) == ("per_second", "limit", 1)
    clock.advance(1000)
    first = limiter.check("u")
    assert first.allowed and first.policy == "per_minute" and first.remaining == 0
    d = limiter.check("u")
    assert not d.allowed and d.policy == "per_minute"
    assert d.policies is not None and [p.allowed for p in d.policies] == [True, False]
    # per_second would have admitted: nothing was taken from it.
    assert d.policies[0].remaining == 1
    s = limiter.stats()
    assert (s.allowed, s.blocked, s.active_keys, s.shadow_blocked) == (3, 3, 2, 0)
    assert [p.name for p in limiter.policies] == ["per_second", "per_minute"]


def test_peek_reset_and_clear_cover_every_policy() -> None:
    clock = FakeClock(T0)
    limiter = two(clock)
    limiter.check("u")
    p = limiter.peek("u")
    assert p.policies is not None and [x.remaining for x in p.policies] == [1, 2]
    assert limiter.peek("u").policies[0].remaining == 1  # type: ignore[index]
    limiter.reset("u")
    assert limiter.stats().active_keys == 0
    limiter.check("u")
    limiter.clear()
    assert limiter.stats().active_keys == 0 and limiter.stats().total_checks == 0


def test_the_preset_per_second_and_day() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(policy=presets.PER_SECOND_AND_DAY, clock=clock)
    assert sum(limiter.allow("u") for _ in range(25)) == 20
    d = limiter.check("u")
    assert d.policy == "per_second" and d.policies is not None and d.policies[1].remaining == 10_000 - 20


def test_a_policy_in_a_set_shares_its_counters_with_the_same_policy_alone() -> None:
    clock = FakeClock(T0)
    store = InMemoryStore(sweep_interval=0)
    day = Policy(name="per_day", limit=5, window=86_400, algorithm="fixed_window")
    alone = RateLimiter(policy=day, store=store, clock=clock)
    in_set = RateLimiter(policy=[Policy(name="per_second", limit=10, window=1), day], store=store, clock=clock)
    alone.check("u", cost=3)
    d = in_set.check("u")
    assert d.policy == "per_day" and d.remaining == 1


def test_shadow_policies_never_reject_and_are_reported() -> None:
    clock = FakeClock(T0)
    rec = Recorder()
    limiter = RateLimiter(
        policy=[
            Policy(name="enforced", limit=10, window=60),
            Policy(name="trial", limit=2, window=60, algorithm="fixed_window", mode="shadow"),
        ],
        clock=clock,
        telemetry=rec,
    )
    ds = [limiter.check("u") for _ in range(4)]
    assert all(d.allowed for d in ds)
    assert [d.policies[1].allowed for d in ds] == [True, True, False, False]  # type: ignore[index]
    assert all(d.policies[1].shadow for d in ds)  # type: ignore[index]
    assert limiter.stats().shadow_blocked == 2 and limiter.stats().allowed == 4
    shadow = [e for e in rec.checks if e.shadow]
    assert len(shadow) == 4 and len([e for e in rec.checks if not e.shadow]) == 4
    assert [e.decision.policy for e in rec.blocked] == ["trial", "trial"] and all(e.shadow for e in rec.blocked)
    # The enforced policy counts every served request.
    assert ds[-1].remaining == 6
    # The shadow policy consumed only while every policy admitted.
    assert limiter.peek("u").policies[1].remaining == 0  # type: ignore[index]
    # IETF headers name the enforced policy only.
    h: dict[str, str] = {}
    limiter.write_headers(ds[-1], "ietf", h, lambda t, n, v: t.__setitem__(n, v))
    assert h["RateLimit-Policy"] == '"enforced";q=10;w=60'


def test_a_shadow_limiter_admits_everything_and_sends_no_headers() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(policy=Policy(name="p", limit=1, window=60), mode="shadow", clock=clock)
    ds = [limiter.check("u") for _ in range(3)]
    assert all(d.allowed and d.shadow for d in ds)
    assert limiter.stats().shadow_blocked == 2 and limiter.stats().blocked == 0
    assert rate_limit_headers(ds[-1]) == {}
    # Switching it to enforce keeps its counters (the same key).
    enforced = RateLimiter(policy=Policy(name="p", limit=1, window=60), store=limiter.store, clock=clock)
    assert not enforced.check("u").allowed


def test_ietf_headers_carry_one_item_per_enforced_policy() -> None:
    clock = FakeClock(T0)
    limiter = two(clock)
    d = limiter.check("u")
    h: dict[str, str] = {}
    limiter.write_headers(d, "ietf", h, lambda t, n, v: t.__setitem__(n, v))
    assert h == {
        "RateLimit-Policy": '"per_second";q=2;w=1, "per_minute";q=3;w=60',
        "RateLimit": '"per_second";r=1;t=1, "per_minute";r=2;t=40',
    }
    h = {}
    limiter.write_headers(d, "standard", h, lambda t, n, v: t.__setitem__(n, v))
    assert h["RateLimit-Remaining"] == "1" and h["RateLimit-Limit"] == "2"


def test_near_limit_fires_on_the_crossing_per_policy() -> None:
    clock = FakeClock(T0)
    rec = Recorder()
    limiter = RateLimiter(
        policy=[
            Policy(name="a", limit=10, window=60, algorithm="fixed_window"),
            Policy(name="b", limit=5, window=60, algorithm="fixed_window", mode="shadow"),
        ],
        clock=clock,
        telemetry=rec,
        near_limit=0.8,
    )
    for _ in range(9):
        limiter.check("u")
    # b crosses 4 of 5 on the 4th request (a shadow policy, while every policy admits); a crosses 8 of 10 on the 8th.
    assert [(e.decision.policy, e.shadow, e.decision.remaining) for e in rec.near] == [("b", True, 1), ("a", False, 2)]


def test_a_sets_events_go_through_the_hub_with_one_request_id_and_a_duration() -> None:
    clock = FakeClock(T0)
    rec = Recorder()
    seen: list[Any] = []
    limiter = RateLimiter(
        policy=[
            Policy(name="a", limit=5, window=60, algorithm="fixed_window"),
            Policy(name="b", limit=10, window=60, algorithm="fixed_window"),
            Policy(name="trial", limit=5, window=60, algorithm="fixed_window", mode="shadow"),
        ],
        clock=clock,
        telemetry=[rec, {"on_check": seen.append}],  # two sinks: both see every event
        near_limit=0.8,
    )
    req = BasicRequestView(ip="203.0.113.7", method="GET", path="/", headers={"x-request-id": "req-1"})
    for _ in range(4):
        limiter.check(req)
    # Per check: the set's decision (the binding policy a), then the shadow policy's.
    assert [(e.decision.policy, e.shadow) for e in rec.checks[:2]] == [("a", False), ("trial", True)]
    assert len(rec.checks) == 8 and len(seen) == 8
    assert all(e.request_id == "req-1" and e.duration_ms is not None and e.duration_ms >= 0 for e in rec.checks)
    # The 4th check takes a and trial to 4 of 5: one signal each, none for the set's own decision; b (4 of 10) none.
    assert [(e.decision.policy, e.shadow, e.request_id) for e in rec.near] == [
        ("a", False, "req-1"),
        ("trial", True, "req-1"),
    ]


def test_penalties_are_refused_with_a_limit_set() -> None:
    pm = PenaltyManager(PenaltyConfig(threshold=1, duration="5m"))
    p = Policy(name="a", limit=1, window=1)
    with pytest.raises(HaltConfigError) as e:
        RateLimiter(policy=[p, Policy(name="b", limit=5, window=60)], penalties=pm)
    assert e.value.code == "HALT_INVALID_OPTIONS"
    assert str(e.value).startswith(
        "RateLimiter: penalties apply to a limiter with one enforced policy, not to several or shadow ones. "
        "Fix: put the penalties on a limiter of their own."
    )
    with pytest.raises(HaltConfigError) as e:
        RateLimiter(policy=p, mode="shadow", penalties=pm)
    assert e.value.code == "HALT_INVALID_OPTIONS"
    # A set from a resolver under penalties is invalid: the default policy decides (and penalties apply to it).
    warnings: list[Any] = []
    limiter = RateLimiter(
        policy=lambda req: [p, Policy(name="b", limit=5, window=60)],
        default_policy=Policy(name="free", limit=1, window=60),
        penalties=pm,
        on_warning=warnings.append,
        clock=FakeClock(T0),
    )
    d = limiter.check(request())
    assert d.policy == "free" and d.policies is None
    assert [w.code for w in warnings] == ["HALT_POLICY_RESOLVER_FAILED"]
    assert not limiter.check(request()).allowed


def test_configuration_errors_have_the_typescript_codes() -> None:
    def code(**options: Any) -> str:
        with pytest.raises(HaltConfigError) as e:
            RateLimiter(**options)
        return e.value.code

    p = Policy(name="a", limit=1, window=1)
    assert code(policy=[]) == "HALT_INVALID_POLICY_SET"
    assert code(policy=[p, p]) == "HALT_INVALID_POLICY_SET"
    by_ip = Policy(name="a", limit=1, window=1, key_strategy="ip")
    by_user = Policy(name="b", limit=1, window=1, key_strategy="user")
    assert code(policy=[by_ip, by_user]) == "HALT_INVALID_POLICY_SET"
    assert code(policy=[p], default_policy=p) == "HALT_INVALID_OPTIONS"
    assert code(policy=p, mode="dry-run") == "HALT_INVALID_MODE"
    assert code(policy=Policy(name="a", limit=1, window=1, mode="quiet")) == "HALT_INVALID_MODE"
    assert code(policy=p, near_limit=0) == "HALT_INVALID_NEAR_LIMIT"
    assert code(policy=p, near_limit=1.5) == "HALT_INVALID_NEAR_LIMIT"
    assert code(policy=[p, Policy(name="b", limit=10, window=1)], cost=5) == "HALT_COST_EXCEEDS_CAPACITY"

    class NoSets:
        synchronous = True
        shared = False

        def consume(self, *a: Any) -> Any: ...

        def peek(self, *a: Any) -> Any: ...

        def reset(self, *a: Any) -> None: ...

        def clear(self, *a: Any) -> None: ...

    assert code(policy=[p, Policy(name="b", limit=1, window=1)], store=NoSets()) == "HALT_STORE_NO_SETS"
    assert code(policy=Policy(name="a", limit=1, window=1, mode="shadow"), store=NoSets()) == "HALT_STORE_NO_SETS"
    with pytest.raises(HaltConfigError) as e:
        two(FakeClock()).check("u", algorithm="gcra")
    assert e.value.code == "HALT_INVALID_OPTIONS"


def test_costs_go_to_every_policy_or_each_takes_its_own() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(
        policy=[Policy(name="a", limit=10, window=60, cost=2), Policy(name="b", limit=10, window=60, cost=3)],
        clock=clock,
    )
    d = limiter.check("u")
    assert [p.remaining for p in d.policies] == [8, 7]  # type: ignore[union-attr]
    d = limiter.check("u", cost=1)
    assert [p.remaining for p in d.policies] == [7, 6]  # type: ignore[union-attr]


def request(ip: str = "203.0.113.7", plan: str = "free") -> BasicRequestView:
    return BasicRequestView(ip=ip, method="GET", path="/api", headers={"x-plan": plan})


def test_a_resolver_may_return_a_set() -> None:
    clock = FakeClock(T0)
    pro = [Policy(name="pro_s", limit=2, window=1), Policy(name="pro_d", limit=3, window=86_400)]
    free = Policy(name="free", limit=1, window=60)
    limiter = RateLimiter(
        policy=lambda req: pro if req.header("x-plan") == "pro" else None, default_policy=free, clock=clock
    )
    ds = [limiter.check(request(plan="pro")) for _ in range(3)]
    assert [d.allowed for d in ds] == [True, True, False]
    assert ds[0].policies is not None and [p.policy for p in ds[0].policies] == ["pro_s", "pro_d"]
    assert limiter.check(request(plan="free")).policies is None
    clock.advance(1000)
    assert limiter.check(request(plan="pro")).allowed
    d = limiter.check(request(plan="pro"))
    assert not d.allowed and d.policy == "pro_d"
    limiter.reset(request(plan="pro"))
    assert limiter.check(request(plan="pro")).allowed


def test_an_invalid_set_from_a_resolver_falls_back_to_the_default_policy() -> None:
    warnings: list[Any] = []
    bad = [Policy(name="x", limit=1, window=1), Policy(name="x", limit=2, window=1)]
    limiter = RateLimiter(
        policy=lambda req: bad,
        default_policy=Policy(name="free", limit=5, window=60),
        on_warning=warnings.append,
    )
    d = limiter.check(request())
    assert d.allowed and d.policy == "free" and d.policies is None
    assert [w.code for w in warnings] == ["HALT_POLICY_RESOLVER_FAILED"]


def test_exempt_requests_skip_the_set() -> None:
    limiter = two(FakeClock(T0))
    d = limiter.check(request(ip="10.0.0.1"))
    assert d.reason == "exempt" and limiter.stats().total_checks == 0


def test_many_threads_on_one_identity_admit_exactly_the_tightest_limit() -> None:
    limiter = RateLimiter(
        policy=[
            Policy(name="a", limit=150, window=3600, algorithm="fixed_window"),
            Policy(name="b", limit=1000, window=3600, algorithm="sliding_window"),
        ],
        clock=FakeClock(T0),
    )
    results: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        mine = [limiter.allow("hot") for _ in range(50)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 150
    p = limiter.peek("hot").policies
    assert p is not None and p[0].remaining == 0 and p[1].remaining == 1000 - 150


async def test_async_methods_on_the_memory_store() -> None:
    limiter = two(FakeClock(T0))
    assert [(await limiter.acheck("u")).allowed for _ in range(3)] == [True, True, False]
    assert (await limiter.apeek("u")).policies is not None
    assert (await limiter.astats()).blocked == 1


def test_the_decorator_raises_with_the_binding_decision() -> None:
    from halt import RateLimitExceeded

    limiter = two(FakeClock(T0))

    @limiter.limit(lambda user: f"user:{user}")
    def call(user: str) -> str:
        return "ok"

    assert [call("a"), call("a")] == ["ok", "ok"]
    with pytest.raises(RateLimitExceeded) as e:
        call("a")
    assert e.value.decision.policy == "per_second" and e.value.decision.policies is not None
