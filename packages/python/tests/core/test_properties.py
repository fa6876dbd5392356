"""Properties on random traffic (hypothesis, explicit times, no clock): the claims of spec/README.md."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from halt import Policy
from halt.core.algorithms import evaluate
from halt.core.policy import compile_policy

T0 = 1_700_000_000_000
gaps = st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=120)
costs = st.sampled_from([0.5, 1, 1, 1, 2, 3])


@settings(max_examples=150, deadline=None)
@given(limit=st.integers(1, 12), window_s=st.integers(1, 3), precision=st.integers(1, 12), steps=gaps, data=st.data())
def test_sliding_window_never_admits_more_than_limit_in_any_window(
    limit: int, window_s: int, precision: int, steps: list[int], data: st.DataObject
) -> None:
    rule = compile_policy(Policy(limit=limit, window=window_s, algorithm="sliding_window", precision=precision, cost=0))
    w = window_s * 1000
    t = T0
    state = None
    admitted: list[tuple[int, float]] = []
    for gap in steps:
        t += gap * window_s
        c = data.draw(costs) if limit >= 3 else 1
        state, out = evaluate(state, t, c, rule)
        if out.allowed:
            admitted.append((t, c))
            in_window = sum(cc for tt, cc in admitted if tt > t - w)
            assert in_window <= limit + 1e-9


@settings(max_examples=150, deadline=None)
@given(limit=st.integers(1, 20), burst_extra=st.integers(0, 10), window_s=st.integers(1, 5), steps=gaps, data=st.data())
def test_gcra_admits_what_a_token_bucket_admits(
    limit: int, burst_extra: int, window_s: int, steps: list[int], data: st.DataObject
) -> None:
    burst = limit + burst_extra
    tb = compile_policy(Policy(limit=limit, window=window_s, burst=burst, cost=0))
    gc = compile_policy(Policy(limit=limit, window=window_s, burst=burst, algorithm="gcra", cost=0))
    s1 = s2 = None
    t = T0
    for gap in steps:
        t += gap * 10
        c = data.draw(st.sampled_from([1, 1, 2, 3]))
        s1, a = evaluate(s1, t, c, tb)
        s2, b = evaluate(s2, t, c, gc)
        assert a.allowed == b.allowed
        assert a.remaining == b.remaining


@settings(max_examples=100, deadline=None)
@given(
    algorithm=st.sampled_from(["token_bucket", "gcra", "fixed_window", "sliding_window", "leaky_bucket"]),
    steps=gaps,
    block=st.sampled_from([0, 2]),
)
def test_a_client_that_obeys_retry_after_is_admitted(algorithm: str, steps: list[int], block: int) -> None:
    rule = compile_policy(Policy(limit=3, window=1, algorithm=algorithm, block_duration=block, cost=0))
    state = None
    t = T0
    for gap in steps:
        t += gap
        state, out = evaluate(state, t, 1, rule)
        if not out.allowed:
            assert out.retry_after_ms > 0
            _, again = evaluate(state, t + out.retry_after_ms, 1, rule)
            assert again.allowed, (algorithm, out)
