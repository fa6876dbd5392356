"""Plan tables and the policy(req) resolver: a plan per request picks its policy and quota; unknown plans fall back."""

from __future__ import annotations

from typing import Any

import pytest

from halt import HaltConfigError, InMemoryStore, Policy, Quota, RateLimiter, define_plans, get_plan_policy, presets
from halt.core.plans import PlanEntry
from tests.http.support import view
from tests.support import FakeClock

PLANS = define_plans(
    {
        "Free": {
            "policy": Policy(name="free", limit=2, window=60, key_strategy="api_key"),
            "quota": Quota(name="calls_free", limit=100, period="monthly"),
        },
        "team": {"name": "team", "limit": 5, "window": 60, "key_strategy": "api_key"},
        "pro": PlanEntry(Policy(name="pro", limit=9, window=60), Quota(name="calls_pro", limit=1000, period="monthly")),
    },
    default_plan="free",
)


def test_lookups_ignore_case_and_give_policies_and_quotas() -> None:
    assert PLANS.names == ("Free", "team", "pro")
    assert PLANS.policy("FREE").name == "free"
    assert PLANS.policy(" Team ").limit == 5
    q = PLANS.quota("free")
    assert q is not None and q.limit == 100
    assert PLANS.quota("team") is None
    assert PLANS.has("team") and not PLANS.has("gold")
    assert get_plan_policy("team", PLANS).limit == 5
    assert get_plan_policy("pro") is presets.PLAN_PRO


def code(f: Any) -> str:
    with pytest.raises(HaltConfigError) as e:
        f()
    return e.value.code


def test_bad_tables_fail_at_definition() -> None:
    p = {"limit": 1, "window": 60}
    assert code(lambda: define_plans({})) == "HALT_INVALID_PLANS"
    assert code(lambda: define_plans({"a": {"limit": -1, "window": 60}})) == "HALT_INVALID_PLANS"
    assert code(lambda: define_plans({"a": {"name": "x", **p}, "b": {"name": "x", **p}})) == "HALT_INVALID_PLANS"
    assert code(lambda: define_plans({"a": {"name": "a", **p}, "A": {"name": "b", **p}})) == "HALT_INVALID_PLANS"
    assert code(lambda: define_plans({" ": p})) == "HALT_INVALID_PLANS"
    assert code(lambda: define_plans({"a": p}, default_plan="gold")) == "HALT_UNKNOWN_PLAN"
    bad_quota = {"a": {"policy": p, "quota": Quota(name="q", limit=0, period="monthly")}}
    assert code(lambda: define_plans(bad_quota)) == "HALT_INVALID_QUOTA"
    assert code(lambda: PLANS.policy("gold")) == "HALT_UNKNOWN_PLAN"
    assert code(lambda: PLANS.resolver("free")) == "HALT_INVALID_PLANS"  # type: ignore[arg-type]


ACCOUNTS = {"key-team": "team", "key-free": "free", "key-odd": "platinum"}


def limiter() -> RateLimiter:
    return RateLimiter(
        store=InMemoryStore(sweep_interval=0),
        clock=FakeClock(),
        policy=PLANS.resolver(lambda req: ACCOUNTS.get(req.header("x-api-key") or "")),
        default_policy=PLANS.policy(PLANS.default_plan),
        exempt_private_ips=False,
        api_key_secret="a-test-secret-of-32-bytes-length",
    )


def req(key: str) -> Any:
    return view(headers={"x-api-key": key})


def test_each_request_gets_its_plans_policy_counted_apart() -> None:
    lim = limiter()
    team = [lim.check(req("key-team")) for _ in range(6)]
    assert [d.allowed for d in team] == [True] * 5 + [False]
    assert team[0].policy == "team"
    free = [lim.check(req("key-free")) for _ in range(3)]
    assert [d.allowed for d in free] == [True, True, False]
    assert lim.debug_key(req("key-team")).policy == "team"


def test_unknown_or_missing_plans_fall_back_and_a_raising_plan_function_uses_the_default_policy() -> None:
    lim = limiter()
    assert lim.check(req("key-odd")).policy == "free"
    assert lim.check(req("nobody")).policy == "free"

    def boom(req: Any) -> str:
        raise RuntimeError("db down")

    lim2 = RateLimiter(
        policy=PLANS.resolver(boom),
        default_policy=PLANS.policy("free"),
        exempt_private_ips=False,
        on_warning=lambda w: None,
    )
    assert lim2.check(req("key-team")).policy == "free"
    quota_of = PLANS.quota_resolver(lambda r: ACCOUNTS.get(r.header("x-api-key") or ""))
    assert quota_of(req("key-team")) is None
    q = quota_of(req("nobody"))
    assert q is not None and q.name == "calls_free"
