"""Penalty kernel: an abuse score that decays continuously, and progressive penalties (spec/saas/README.md §3).

State [blocked_until, score, last_ms, penalty_until, offences]; blocked_until stays 0.
"""

from __future__ import annotations

from math import ceil
from typing import TYPE_CHECKING

from halt.core.algorithms.kernel import EPS, AlgorithmImpl, State
from halt.core.types import Outcome, Policy

if TYPE_CHECKING:
    from halt.core.policy import Rule

HOUR_MS = 3_600_000
#: Doubling stops growing here (2^52 times the base is beyond any cap).
MAX_DOUBLINGS = 52

# A step records a violation of severity ``cost`` (0: only decay). Rule slots: ``limit`` = threshold,
# ``window_ms`` = the first penalty's duration (ms), ``burst`` = decay rate (points per hour), ``precision`` =
# the longest penalty (ms). The outcome is always allowed (recording never fails) and carries the penalty:
# ``remaining`` = offences so far, ``retry_after_ms`` = ms left of the active penalty (0: none), ``delay_ms`` = the
# abuse score, ``reset_at_ms`` = when the identity is forgiven (the state is then equivalent to a fresh one).


def _init(now: float, rule: Rule) -> State:
    return [0, 0, now, 0, 0]


def _forgiven_at(score: float, last: float, until: float, rate: float) -> float:
    """When the score has decayed to 0 and the penalty is over: ``max(last + ceil(score * 3600000 / R), until)``."""
    zero = last + ceil(score * HOUR_MS / rate) if score > 0 else last
    return zero if zero > until else until


def _idle_at(s: State, rule: Rule) -> float:
    return _forgiven_at(s[1], s[2], s[3], rule.burst)


def _step(s: State, now: float, cost: float, rule: Rule) -> Outcome:
    rate = rule.burst
    score = s[1]
    until = s[3]
    n = s[4]
    if now > s[2]:
        score = score - (now - s[2]) * rate / HOUR_MS
        if score < EPS:
            score = 0
        s[1] = score
        s[2] = now
    if score == 0 and now >= until:
        # Forgiven: score decayed away and no penalty running; offences start again from 0.
        until = 0
        n = 0
        s[3] = 0
        s[4] = 0
    if cost > 0:
        score = score + cost
        s[1] = score
        if now >= until and score + EPS >= rule.limit:
            n = n + 1
            until = now + min(rule.precision, rule.window_ms * 2 ** min(n - 1, MAX_DOUBLINGS))
            s[3] = until
            s[4] = n
    return Outcome(True, int(n), _forgiven_at(score, s[2], until, rate), until - now if until > now else 0, None, score)


penalty_kernel = AlgorithmImpl("penalty", "pen", True, lambda rule: 5, _init, _idle_at, _step)


def penalty_rule(
    name: str, threshold: float, duration_ms: float, decay_per_hour: float, max_duration_ms: float
) -> Rule:
    """The rule of a penalty configuration (ms and points per hour)."""
    from halt.core.policy import Rule

    return Rule(
        Policy(name=name, limit=threshold, window=duration_ms / 1000),
        name,
        penalty_kernel,
        threshold,
        duration_ms,
        decay_per_hour,
        0,
        max_duration_ms,  # type: ignore[arg-type]  # the longest penalty rides in the precision slot
        False,
        0,
    )
