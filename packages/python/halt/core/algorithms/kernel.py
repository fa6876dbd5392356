"""The algorithm contract and the wrapper every algorithm shares (cooldown, block, expiry), per spec/README.md §1."""

from __future__ import annotations

from math import floor
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

from halt.core.types import Outcome

if TYPE_CHECKING:
    from halt.core.policy import Rule

#: Slack allowed in comparisons of units (spec: EPS).
EPS = 1e-9

#: A key's state: the spec's flat list of numbers, ``s[0]`` always ``blocked_until``.
State = List[float]


class AlgorithmImpl:
    """One algorithm as three pure functions over a state list. They read no clock and do no I/O;
    ``step`` updates the state in place and returns the outcome (without ``expires_at_ms``)."""

    __slots__ = ("code", "idle_at", "init", "name", "size", "step", "windowed")

    def __init__(
        self,
        name: str,
        code: str,
        windowed: bool,
        size: Callable[[Rule], int],
        init: Callable[[float, Rule], State],
        idle_at: Callable[[State, Rule], float],
        step: Callable[[State, float, float, Rule], Outcome],
    ) -> None:
        self.name = name
        #: Short code used in storage keys (``tb``, ``gcra``, ``fw``, ``sw``, ``lb``).
        self.code = code
        #: Window algorithms cap a request at ``limit``; bucket algorithms at ``burst``.
        self.windowed = windowed
        #: Number of state slots, including ``blocked_until``.
        self.size = size
        #: The fresh state for time ``now``.
        self.init = init
        #: When the algorithm's part of the state is equivalent to a fresh one.
        self.idle_at = idle_at
        #: Bring the state up to ``now``, try to take ``cost``, return the outcome.
        self.step = step


def units_left(capacity: float, used: float) -> int:
    """Whole units left of ``capacity`` when ``used`` are taken: ``max(0, floor(capacity - used + EPS))``."""
    return max(0, floor(capacity - used + EPS))


def cost_exceeds_capacity(rule: Rule, remaining: int, reset_at_ms: float) -> Outcome:
    """The outcome of a request rejected because it can never fit."""
    return Outcome(False, remaining, reset_at_ms, rule.window_ms, "cost_exceeds_capacity", 0)


def run_step(s: State, now: float, cost: float, rule: Rule) -> Outcome:
    """One step of ``rule``'s algorithm on ``s`` (which must exist), with the common cooldown and block handling."""
    blocked_until = s[0]
    if now < blocked_until:
        return _cooldown(s, now, cost, rule, blocked_until)
    out = rule.step(s, now, cost, rule)
    if out.reason == "limit" and rule.block_ms > 0:
        until = now + rule.block_ms
        s[0] = until
        if out.retry_after_ms < rule.block_ms:
            out.retry_after_ms = rule.block_ms
        if out.reset_at_ms < until:
            out.reset_at_ms = until
    b = s[0]
    out.expires_at_ms = out.reset_at_ms if out.reset_at_ms > b else b
    return out


def expires_at(s: State, rule: Rule) -> float:
    """When the state expires: it is then equivalent to a missing one."""
    idle = rule.algorithm.idle_at(s, rule)
    blocked = s[0]
    return idle if idle > blocked else blocked


def fits(state: Optional[Sequence[float]], rule: Rule) -> bool:
    """Whether a stored state has the layout ``rule`` expects (else it is replaced by a fresh one)."""
    return state is not None and len(state) == rule.state_size


def evaluate(state: Optional[Sequence[float]], now: float, cost: float, rule: Rule) -> Tuple[State, Outcome]:
    """The pure form of an algorithm, as the spec states it: ``(state | None, now, cost, rule) -> (state, outcome)``.

    The input is not modified.
    """
    nxt = list(state) if state is not None and fits(state, rule) else rule.algorithm.init(now, rule)
    return nxt, run_step(nxt, now, cost, rule)


def _cooldown(s: State, now: float, cost: float, rule: Rule, blocked_until: float) -> Outcome:
    """Reject during a cooldown. The algorithm runs on a copy so that ``retry_after_ms`` also covers what it
    needs: a client that obeys Retry-After is then admitted."""
    out = rule.step(list(s), now, cost, rule)
    wait = blocked_until - now
    out.allowed = False
    out.reason = "cooldown"
    out.remaining = 0
    if out.retry_after_ms < wait:
        out.retry_after_ms = wait
    if out.reset_at_ms < blocked_until:
        out.reset_at_ms = blocked_until
    out.delay_ms = 0
    out.expires_at_ms = out.reset_at_ms
    return out
