"""GCRA: one theoretical arrival time per key; admits what a token bucket of equal rate and burst admits.

State [blocked_until, tat]. Times are compared with a slack of at most 1 µs (spec/README.md says why).
"""

from __future__ import annotations

from math import ceil, floor
from typing import TYPE_CHECKING

from halt.core.algorithms.kernel import AlgorithmImpl, State, cost_exceeds_capacity
from halt.core.types import Outcome

if TYPE_CHECKING:
    from halt.core.policy import Rule


def _left(t: float, now: float, tau: float, emission: float, slack: float) -> int:
    """Whole units left when the theoretical arrival time is ``t``."""
    return max(0, floor((tau - (t - now) + slack) / emission))


def _init(now: float, rule: Rule) -> State:
    return [0, now]


def _idle_at(s: State, rule: Rule) -> float:
    return ceil(s[1])


def _step(s: State, now: float, cost: float, rule: Rule) -> Outcome:
    t = rule.emission
    tau = rule.tau
    slack = rule.gcra_slack
    tat = s[1]
    # A clock that stepped back: never read more than a full bucket ahead of `now`.
    at = tat - tau if tat - tau > now else now
    base = tat if tat > at else at
    if cost > rule.burst:
        return cost_exceeds_capacity(rule, _left(base, at, tau, t, slack), ceil(base))
    new_tat = base + cost * t
    if new_tat - at - tau <= slack:
        s[1] = new_tat
        return Outcome(True, _left(new_tat, at, tau, t, slack), ceil(new_tat), 0, None, 0)
    retry = ceil(new_tat - tau - now - slack)
    return Outcome(False, _left(base, at, tau, t, slack), ceil(base), retry, "limit", 0)


gcra = AlgorithmImpl("gcra", "gcra", False, lambda rule: 2, _init, _idle_at, _step)
