"""Policy validation: the same codes as the TypeScript SDK, messages that say the fix; presets and plans."""

from __future__ import annotations

from typing import Any

import pytest

from halt import Algorithm, HaltConfigError, KeyStrategy, Policy, presets
from halt.core.policy import compile_policy, duration_ms


def code_of(policy: Any) -> str:
    with pytest.raises(HaltConfigError) as e:
        compile_policy(policy)
    return e.value.code


@pytest.mark.parametrize(
    ("policy", "code"),
    [
        (42, "HALT_INVALID_POLICY"),
        ({"limit": 1, "window": 1, "windw": 2}, "HALT_INVALID_POLICY"),
        (Policy(name="", limit=1, window=1), "HALT_INVALID_POLICY_NAME"),
        (Policy(name="x" * 201, limit=1, window=1), "HALT_INVALID_POLICY_NAME"),
        (Policy(limit=0, window=1), "HALT_INVALID_LIMIT"),
        (Policy(limit=-1, window=1), "HALT_INVALID_LIMIT"),
        (Policy(limit=float("inf"), window=1), "HALT_INVALID_LIMIT"),
        (Policy(limit=True, window=1), "HALT_INVALID_LIMIT"),
        ({"window": 1}, "HALT_INVALID_LIMIT"),
        ({"limit": 1}, "HALT_INVALID_WINDOW"),
        (Policy(limit=1, window=0), "HALT_INVALID_WINDOW"),
        (Policy(limit=1, window="0.1ms"), "HALT_INVALID_WINDOW"),
        (Policy(limit=1, window="1 minute"), "HALT_INVALID_DURATION"),
        (Policy(limit=1, window=-5), "HALT_INVALID_DURATION"),
        (Policy(limit=1, window=1, algorithm="leaky"), "HALT_UNKNOWN_ALGORITHM"),
        (Policy(limit=1, window=1, burst=0), "HALT_INVALID_BURST"),
        (Policy(limit=1, window=1, cost=-1), "HALT_INVALID_COST"),
        (Policy(limit=1, window=1, cost=float("nan")), "HALT_INVALID_COST"),
        (Policy(limit=5, window=1, burst=5, cost=6), "HALT_COST_EXCEEDS_CAPACITY"),
        (Policy(limit=5, window=1, algorithm="fixed_window", cost=6), "HALT_COST_EXCEEDS_CAPACITY"),
        (Policy(limit=1, window=1, precision=0), "HALT_INVALID_PRECISION"),
        (Policy(limit=1, window=1, precision=1001), "HALT_INVALID_PRECISION"),
        (Policy(limit=1, window=1, precision=2.5), "HALT_INVALID_PRECISION"),  # type: ignore[arg-type]
        (Policy(limit=1, window=1, leaky_mode="queue"), "HALT_INVALID_LEAKY_MODE"),
        (Policy(limit=1, window=1, block_duration="forever"), "HALT_INVALID_DURATION"),
        (Policy(limit=1, window=1, key_strategy="session"), "HALT_UNKNOWN_KEY_STRATEGY"),
    ],
)
def test_invalid_policies(policy: Any, code: str) -> None:
    assert code_of(policy) == code


def test_message_says_the_fix_and_points_at_the_docs() -> None:
    with pytest.raises(HaltConfigError) as e:
        compile_policy(Policy(name="api", limit=-1, window=60))
    msg = str(e.value)
    assert "policy 'api'" in msg and "Fix:" in msg
    assert msg.endswith("(HALT_INVALID_LIMIT, see docs/errors.md#halt_invalid_limit)")
    assert e.value.docs == "docs/errors.md#halt_invalid_limit"


def test_durations() -> None:
    assert duration_ms(60, "window", "p") == 60_000
    assert duration_ms("500ms", "window", "p") == 500
    assert duration_ms(" 1.5m ", "window", "p") == 90_000
    assert duration_ms("2h", "window", "p") == 7_200_000
    assert duration_ms("1d", "window", "p") == 86_400_000


def test_compiled_rule() -> None:
    r = compile_policy({"name": "api", "limit": 100, "window": "1m", "burst": 120})
    assert r.ns == "api:tb" and r.window_ms == 60_000 and r.capacity == 120 and r.cost == 1
    assert compile_policy(Policy(limit=10, window=1, algorithm=Algorithm.SLIDING_WINDOW, precision=4)).state_size == 7
    assert compile_policy(Policy(limit=10, window=1, algorithm=Algorithm.GCRA)).ns == "default:gcra"
    assert r.with_algorithm("fixed_window").ns == "api:fw"
    assert compile_policy(Policy(limit=1, window=1, key_strategy=KeyStrategy.API_KEY)).policy.key_strategy == "api_key"


def test_presets_match_the_typescript_sdk() -> None:
    expected = {
        "PUBLIC_API": ("public_api", 100, 60, 120, None, None),
        "AUTH_ENDPOINTS": ("auth_endpoints", 5, 60, 10, 300, None),
        "EXPENSIVE_OPS": ("expensive_ops", 10, 3600, 15, None, 10),
        "STRICT_API": ("strict_api", 20, 60, 25, None, None),
        "GENEROUS_API": ("generous_api", 1000, 60, 1200, None, None),
        "PLAN_FREE": ("plan_free", 100, 3600, None, None, None),
        "PLAN_STARTER": ("plan_starter", 500, 3600, None, None, None),
        "PLAN_PRO": ("plan_pro", 2000, 3600, None, None, None),
        "PLAN_BUSINESS": ("plan_business", 5000, 3600, None, None, None),
        "PLAN_ENTERPRISE": ("plan_enterprise", 20000, 3600, None, None, None),
    }
    for attr, (name, limit, window, burst, block, cost) in expected.items():
        p = getattr(presets, attr)
        assert (p.name, p.limit, p.window, p.burst, p.block_duration, p.cost) == (
            name,
            limit,
            window,
            burst,
            block,
            cost,
        )
        assert p.algorithm == "token_bucket"
        compile_policy(p)


def test_get_plan_policy() -> None:
    assert presets.get_plan_policy("Pro") is presets.PLAN_PRO
    assert presets.get_plan_policy(" enterprise ") is presets.PLAN_ENTERPRISE
    with pytest.raises(HaltConfigError) as e:
        presets.get_plan_policy("gold")
    assert e.value.code == "HALT_UNKNOWN_PLAN"
    assert "free, starter, pro, business, enterprise" in str(e.value)
