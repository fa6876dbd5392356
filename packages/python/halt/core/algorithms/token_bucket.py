"""Token bucket: capacity ``burst``, continuous refill of ``limit / window``. State [blocked_until, tokens, last_ms]."""

from __future__ import annotations

from math import ceil, floor
from typing import TYPE_CHECKING

from halt.core.algorithms.kernel import EPS, AlgorithmImpl, State, cost_exceeds_capacity
from halt.core.types import Outcome

if TYPE_CHECKING:
    from halt.core.policy import Rule


def _full_at(tokens: float, b: float, r: float, last: float) -> float:
    """When the bucket is full again."""
    return last if tokens + EPS >= b else last + ceil((b - tokens - EPS) / r)


def _init(now: float, rule: Rule) -> State:
    return [0, rule.burst, now]


def _idle_at(s: State, rule: Rule) -> float:
    return _full_at(s[1], rule.burst, rule.rate, s[2])


def _step(s: State, now: float, cost: float, rule: Rule) -> Outcome:
    b = rule.burst
    r = rule.rate
    tokens = s[1]
    last = s[2]
    if now > last:
        tokens += (now - last) * r
        last = now
        s[2] = now
    # Clamped also when no time passed: a state saved under a larger burst (the policy was changed) holds at most B.
    if tokens > b:
        tokens = b
    s[1] = tokens
    if cost > b:
        return cost_exceeds_capacity(rule, floor(tokens + EPS), _full_at(tokens, b, r, last))
    if tokens + EPS >= cost:
        tokens -= cost
        if tokens < 0:
            tokens = 0
        s[1] = tokens
        full = last if tokens + EPS >= b else last + ceil((b - tokens - EPS) / r)
        return Outcome(True, floor(tokens + EPS), full, 0, None, 0)
    # A clock that stepped back: refill resumes only at last_ms.
    wait = last - now if last > now else 0
    retry = wait + ceil((cost - tokens - EPS) / r)
    return Outcome(False, floor(tokens + EPS), _full_at(tokens, b, r, last), retry, "limit", 0)


token_bucket = AlgorithmImpl("token_bucket", "tb", False, lambda rule: 3, _init, _idle_at, _step)
