"""Fixed window: a counter per aligned window; up to 2x limit can pass around a boundary (documented).

State [blocked_until, window_start, count].
"""

from __future__ import annotations

from math import floor
from typing import TYPE_CHECKING

from halt.core.algorithms.kernel import EPS, AlgorithmImpl, State, cost_exceeds_capacity, units_left
from halt.core.types import Outcome

if TYPE_CHECKING:
    from halt.core.policy import Rule


def _init(now: float, rule: Rule) -> State:
    return [0, floor(now / rule.window_ms) * rule.window_ms, 0]


def _idle_at(s: State, rule: Rule) -> float:
    return s[1] + rule.window_ms


def _step(s: State, now: float, cost: float, rule: Rule) -> Outcome:
    limit = rule.limit
    w = rule.window_ms
    ws = floor(now / w) * w
    start = s[1]
    count = s[2]
    if ws > start:
        start = ws
        count = 0
        s[1] = start
        s[2] = 0
    if cost > limit:
        return cost_exceeds_capacity(rule, units_left(limit, count), start + w)
    if count + cost <= limit + EPS:
        count += cost
        s[2] = count
        return Outcome(True, units_left(limit, count), start + w, 0, None, 0)
    return Outcome(False, units_left(limit, count), start + w, start + w - now, "limit", 0)


fixed_window = AlgorithmImpl("fixed_window", "fw", True, lambda rule: 3, _init, _idle_at, _step)
