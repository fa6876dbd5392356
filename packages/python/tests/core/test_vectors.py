"""Every spec/vectors case through the pure kernels, bit for bit (states to 1e-9)."""

from __future__ import annotations

from typing import Any

import pytest

from halt.core.algorithms import evaluate
from halt.core.policy import compile_policy
from tests.support import assert_state, case_id, expected_fields, outcome_fields, to_policy, vector_cases

CASES = vector_cases()


def test_every_algorithm_has_vectors() -> None:
    assert {a for a, _ in CASES} == {"token_bucket", "gcra", "fixed_window", "sliding_window", "leaky_bucket"}
    assert len(CASES) >= 100


@pytest.mark.parametrize("pair", CASES, ids=[case_id(p) for p in CASES])
def test_vector(pair: tuple[str, dict[str, Any]]) -> None:
    algorithm, case = pair
    rule = compile_policy(to_policy(algorithm, case))
    state: list[float] | None = None
    for i, step in enumerate(case["steps"]):
        peek = step.get("peek", False)
        nxt, out = evaluate(state, step["t"], 0 if peek else step.get("cost", 1), rule)
        assert outcome_fields(out) == expected_fields(step["expect"]), f"step {i}"
        if not peek:
            state = nxt
        if "state" in step["expect"]:
            assert state is not None
            assert_state(state, step["expect"]["state"])


def test_token_bucket_clamps_a_state_saved_under_a_larger_burst() -> None:
    """A policy lowered from burst 10 to 5: the saved 10 tokens count as 5, even with no time passed (as in TS)."""
    big = compile_policy(to_policy("token_bucket", {"policy": {"limit": 10, "window": 10}}))
    small = compile_policy(to_policy("token_bucket", {"policy": {"limit": 5, "window": 10}}))
    state, _ = evaluate(None, 1_700_000_000_000, 0, big)
    _, out = evaluate(state, 1_700_000_000_000, 1, small)
    assert out.allowed and out.remaining == 4
