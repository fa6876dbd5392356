"""Every spec/saas vector through the pure kernels (evaluate) and the in-memory store, bit for bit, and every
calendar vector through period_bounds (zoneinfo)."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from halt import InMemoryStore
from halt.core.algorithms import KERNELS, evaluate
from halt.core.calendar import period_bounds
from tests.saas.support import calendar_cases, kernel_cases, kernel_id, kernel_rule
from tests.support import assert_state, expected_fields, outcome_fields

CASES = kernel_cases()


def test_both_kernels_have_vectors_and_are_registered() -> None:
    assert {k for k, _ in CASES} == {"quota", "penalty"}
    assert len(CASES) >= 20
    assert KERNELS["quota"].code == "q" and KERNELS["penalty"].code == "pen"


@pytest.mark.parametrize("pair", CASES, ids=[kernel_id(p) for p in CASES])
def test_kernel_vector(pair: tuple[str, dict[str, Any]]) -> None:
    kernel, case = pair
    state: Optional[list[float]] = None
    for i, step in enumerate(case["steps"]):
        rule = kernel_rule(kernel, case, step)
        peek = step.get("peek", False)
        before = None if state is None else list(state)
        nxt, out = evaluate(state, step["t"], 0 if peek else step.get("cost", 1), rule)
        assert state == before, "evaluate() must not modify its input"
        assert outcome_fields(out) == expected_fields(step["expect"]), f"step {i}"
        if not peek:
            state = nxt
        expected = step["expect"]["state"]
        if expected is None:
            assert state is None, f"step {i}"
        else:
            assert state is not None
            assert_state(state, expected)


@pytest.mark.parametrize("pair", CASES, ids=[kernel_id(p) for p in CASES])
def test_kernel_vector_in_memory(pair: tuple[str, dict[str, Any]]) -> None:
    kernel, case = pair
    store = InMemoryStore(sweep_interval=0)
    for i, step in enumerate(case["steps"]):
        rule = kernel_rule(kernel, case, step)
        if step.get("peek"):
            out = store.peek(rule.ns, "k", rule, step["t"])
        else:
            out = store.consume(rule.ns, "k", rule, step["t"], step.get("cost", 1))
        assert outcome_fields(out) == expected_fields(step["expect"]), f"step {i}"


@pytest.mark.parametrize("case", calendar_cases(), ids=lambda c: f"{c['period']} {c['time_zone']}: {c['description']}")
def test_calendar_vector(case: dict[str, Any]) -> None:
    b = period_bounds(case["period"], case["t"], case["time_zone"])
    assert (b.start_ms, b.end_ms) == (case["start"], case["end"])
    assert b.start_ms <= case["t"] < b.end_ms
