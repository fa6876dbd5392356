"""Leaky bucket: a queue of capacity ``burst`` draining at ``limit / window``.

Meter mode rejects when full; shaping mode also tells each request how long to wait.
State [blocked_until, level, last_ms].
"""

from __future__ import annotations

from math import ceil
from typing import TYPE_CHECKING

from halt.core.algorithms.kernel import EPS, AlgorithmImpl, State, cost_exceeds_capacity, units_left
from halt.core.types import Outcome

if TYPE_CHECKING:
    from halt.core.policy import Rule


def _drained(level: float, r: float) -> float:
    """Milliseconds until ``level`` units have drained."""
    return 0 if level <= EPS else ceil((level - EPS) / r)


def _init(now: float, rule: Rule) -> State:
    return [0, 0, now]


def _idle_at(s: State, rule: Rule) -> float:
    return s[2] + _drained(s[1], rule.rate)


def _step(s: State, now: float, cost: float, rule: Rule) -> Outcome:
    b = rule.burst
    r = rule.rate
    level = s[1]
    last = s[2]
    if now > last:
        level = max(0, level - (now - last) * r)
        last = now
        s[1] = level
        s[2] = now
    # A clock that stepped back: draining resumes only at last_ms.
    wait = last - now if last > now else 0
    if cost > b:
        return cost_exceeds_capacity(rule, units_left(b, level), last + _drained(level, r))
    if level + cost <= b + EPS:
        delay = wait + _drained(level, r) if rule.shaping else 0
        level += cost
        s[1] = level
        return Outcome(True, units_left(b, level), last + _drained(level, r), 0, None, delay)
    retry = wait + ceil((level + cost - b - EPS) / r)
    return Outcome(False, units_left(b, level), last + _drained(level, r), retry, "limit", 0)


leaky_bucket = AlgorithmImpl("leaky_bucket", "lb", False, lambda rule: 3, _init, _idle_at, _step)
