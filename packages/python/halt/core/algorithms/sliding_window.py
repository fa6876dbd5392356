"""Sliding window: ``precision`` sub-buckets per window in a ring of precision + 1 slots.

Every admission checks the last precision + 1 buckets, so no interval of length ``window`` ever holds more
than ``limit`` (spec/README.md explains why). State [blocked_until, cur, n_0 .. n_P].
"""

from __future__ import annotations

from functools import reduce
from math import ceil, floor
from operator import add
from typing import TYPE_CHECKING

from halt.core.algorithms.kernel import EPS, AlgorithmImpl, State, cost_exceeds_capacity, units_left
from halt.core.types import Outcome

if TYPE_CHECKING:
    from halt.core.policy import Rule


def _reset_at(s: State, k: int, p: int, b: float, now: float) -> float:
    """When every counted bucket has left the window: ``now`` if all are empty."""
    n = p + 1
    for i in range(k, k - p - 1, -1):
        if s[2 + i % n] > 0:
            return ceil((i + p + 1) * b)
    return now


def _init(now: float, rule: Rule) -> State:
    s: State = [0, floor(now / rule.bucket_ms)]
    s.extend(0 for _ in range(rule.precision + 1))
    return s


def _idle_at(s: State, rule: Rule) -> float:
    # Empty, the state still pins `cur`: it equals a fresh one once time reaches that bucket.
    cur = int(s[1])
    return _reset_at(s, cur, rule.precision, rule.bucket_ms, cur * rule.bucket_ms)


def _step(s: State, now: float, cost: float, rule: Rule) -> Outcome:
    p = rule.precision
    n = p + 1
    b = rule.bucket_ms
    limit = rule.limit
    cur = int(s[1])
    k = floor(now / b)
    if k > cur:
        last = min(k, cur + n)
        for i in range(cur + 1, last + 1):
            s[2 + i % n] = 0
        s[1] = k
    else:
        k = cur
    # Slot order n_0 .. n_P, left to right, plain additions (no compensated summation, unlike sum() on 3.12+).
    used: float = reduce(add, s[2 : 2 + n], 0.0)
    if cost > limit:
        return cost_exceeds_capacity(rule, units_left(limit, used), _reset_at(s, k, p, b, now))
    if used + cost <= limit + EPS:
        slot = 2 + k % n
        s[slot] += cost
        remaining = floor(limit - used - cost + EPS)
        # The newest bucket is usually the one just taken from: then it alone decides reset_at.
        reset = ceil((k + p + 1) * b) if s[slot] > 0 else _reset_at(s, k, p, b, now)
        return Outcome(True, remaining if remaining > 0 else 0, reset, 0, None, 0)
    left = used
    i = k - p
    while i <= k:
        left -= s[2 + i % n]
        if left + cost <= limit + EPS:
            break
        i += 1
    retry = ceil((i + p + 1) * b - now)
    return Outcome(False, units_left(limit, used), _reset_at(s, k, p, b, now), retry, "limit", 0)


def _size(rule: Rule) -> int:
    return rule.precision + 3


sliding_window = AlgorithmImpl("sliding_window", "sw", True, _size, _init, _idle_at, _step)
