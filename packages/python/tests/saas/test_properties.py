"""Properties on random traffic (hypothesis, explicit times, no clock): the quota and penalty kernels agree with the
spec's reference model (spec/tools/reference.py) bit for bit, a quota never lets more than its limit through in a
period, and calendar periods tile time (each holds its instant; the next starts where it ends)."""

from __future__ import annotations

import importlib.util
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from halt.core.algorithms import evaluate, penalty_rule, quota_rule
from halt.core.calendar import PERIODS, period_bounds
from tests.support import SPEC_DIR, outcome_fields

_spec = importlib.util.spec_from_file_location("halt_reference", SPEC_DIR / "tools" / "reference.py")
assert _spec is not None and _spec.loader is not None
reference: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

T0 = 1_767_261_600_000  # 2026-01-01 10:00 UTC
DAY = 86_400_000
steps = st.lists(
    st.tuples(st.integers(0, 3 * DAY), st.sampled_from([0, 0.5, 1, 1, 2, 5]), st.booleans()), min_size=1, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 20), traffic=steps)
def test_quota_kernel_is_the_reference_model_and_never_exceeds_the_limit(
    limit: int, traffic: list[tuple[int, float, bool]]
) -> None:
    t = T0
    state = None
    ref_state = None
    for gap, cost, refund in traffic:
        t += gap // 7
        start = t - t % DAY  # daily periods in UTC
        params = {"limit": limit, "start": start, "end": start + DAY, "refund": refund}
        state, out = evaluate(state, t, cost, quota_rule("q", limit, start, start + DAY, refund))
        expect, ref_state = reference.evaluate_kernel("quota", params, ref_state, t, cost)
        assert outcome_fields(out) == expect
        assert state == ref_state
        assert state[3] <= limit + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    threshold=st.integers(1, 10),
    duration=st.integers(1, 600_000),
    decay=st.sampled_from([0.5, 1, 5, 60, 3600]),
    doublings=st.integers(0, 6),
    traffic=steps,
)
def test_penalty_kernel_is_the_reference_model(
    threshold: int, duration: int, decay: float, doublings: int, traffic: list[tuple[int, float, bool]]
) -> None:
    params = {
        "threshold": threshold,
        "duration_ms": duration,
        "decay_rate": decay,
        "max_duration_ms": duration << doublings,
    }
    rule = penalty_rule("p", threshold, duration, decay, duration << doublings)
    t = T0
    state = None
    ref_state = None
    for gap, cost, peek in traffic:
        t += gap // 50
        nxt, out = evaluate(state, t, 0 if peek else cost, rule)
        expect, ref_after = reference.evaluate_kernel("penalty", params, ref_state, t, cost, peek)
        assert outcome_fields(out) == expect
        if not peek:
            state, ref_state = nxt, ref_after
            assert state == ref_state
        assert out.retry_after_ms <= duration << doublings


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Asia/Kolkata", "Australia/Lord_Howe"]


@settings(max_examples=300, deadline=None)
@given(
    period=st.sampled_from(PERIODS),
    zone=st.sampled_from(ZONES),
    t=st.integers(946_684_800_000, 4_102_444_800_000),  # 2000 .. 2100
)
def test_periods_hold_their_instant_and_tile_time(period: str, zone: str, t: int) -> None:
    b = period_bounds(period, t, zone)
    assert b.start_ms <= t < b.end_ms
    assert period_bounds(period, b.start_ms, zone) == b
    assert period_bounds(period, b.end_ms, zone).start_ms == b.end_ms
    assert period_bounds(period, b.end_ms - 1, zone) == b
    assert reference.period_bounds(period, t, zone) == (b.start_ms, b.end_ms)
