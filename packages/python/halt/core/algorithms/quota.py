"""Calendar quota kernel: a counter per period [start, end) that the caller computes (spec/saas/README.md §2).

State [blocked_until, period_start, period_end, used]; blocked_until stays 0 (a quota has no cooldown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from halt.core.algorithms.kernel import EPS, AlgorithmImpl, State, cost_exceeds_capacity, units_left
from halt.core.types import Outcome, Policy

if TYPE_CHECKING:
    from halt.core.policy import Rule


# The kernel reads a quota rule's numbers through the slots every store (and the Redis ARGV) already carries:
# ``limit`` = the quota's limit, ``burst`` = the period's start (epoch ms), ``window_ms`` = the period's length,
# ``shaping`` = refund (subtract ``cost`` instead of taking it).


def _init(now: float, rule: Rule) -> State:
    return [0, rule.burst, rule.burst + rule.window_ms, 0]


def _idle_at(s: State, rule: Rule) -> float:
    return s[2]


def _step(s: State, now: float, cost: float, rule: Rule) -> Outcome:
    limit = rule.limit
    start = rule.burst
    # A later period, or a state whose period is over (it has expired), starts afresh; a state of a later period
    # (a caller whose clock is behind) is kept.
    if start > s[1] or now >= s[2]:
        s[1] = start
        s[2] = start + rule.window_ms
        s[3] = 0
    end = s[2]
    used = s[3]
    if rule.shaping:
        # Refund: only within the caller's period; never below 0.
        if s[1] == start:
            used = max(0, used - cost)
            s[3] = used
    elif cost > limit:
        return cost_exceeds_capacity(rule, units_left(limit, used), end)
    elif used + cost <= limit + EPS:
        used += cost
        s[3] = used
    else:
        return Outcome(False, units_left(limit, used), end, end - now, "limit", 0)
    return Outcome(True, units_left(limit, used), end, 0, None, 0)


quota_kernel = AlgorithmImpl("quota", "q", True, lambda rule: 4, _init, _idle_at, _step)


def quota_rule(name: str, limit: float, start_ms: float, end_ms: float, refund: bool) -> Rule:
    """The rule of one quota period; ``refund`` subtracts instead of consuming (both rules share the state)."""
    from halt.core.policy import Rule

    window_ms = end_ms - start_ms
    return Rule(
        Policy(name=name, limit=limit, window=window_ms / 1000),
        name,
        quota_kernel,
        limit,
        window_ms,
        start_ms,
        0,
        1,
        refund,
        0,
    )
