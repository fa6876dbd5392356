"""Limit sets: several policies of one identity decided as one (all or nothing), shadow policies beside them. Pure.

A port of packages/typescript/src/core/sets.ts; spec/README.md §4 states the rule, spec/vectors/sets pins it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, cast

from halt.core.algorithms.kernel import State, evaluate
from halt.core.errors import HaltConfigError
from halt.core.policy import Rule, compile_policy, to_policy
from halt.core.types import Decision, Outcome
from halt.http.headers import more_restrictive

__all__ = ["SetResult", "combine", "compile_set", "evaluate_set"]


class SetResult:
    """What ``evaluate_set`` decides."""

    __slots__ = ("allowed", "outcomes", "states")

    def __init__(self, allowed: bool, outcomes: list[Outcome], states: list[Optional[State]]) -> None:
        #: Whether the enforced policies admit the request (True when every policy is shadow).
        self.allowed = allowed
        #: Each policy's outcome, in order.
        self.outcomes = outcomes
        #: Each policy's state to store, or None: the state stays as it was (nothing to write).
        self.states = states


def evaluate_set(
    states: Sequence[Optional[Sequence[float]]], now: float, costs: Sequence[float], rules: Sequence[Rule]
) -> SetResult:
    """One request against several policies of one identity (spec/README.md §4, "Limit sets").

    Every policy takes its step on its own state. The enforced policies admit only if each of them admits; then
    each consumes. If one rejects, none consumes: a policy that rejected keeps its rejection step (a cooldown it
    starts), a policy that would have admitted keeps its state as it was and reports it (a cost-0 step). Shadow
    policies follow the same rule in the world where they were enforced too: they consume only when every policy,
    enforced and shadow, admits. The input states are not modified; one enforced policy decides as ``evaluate()``.

    Example::

        r = evaluate_set([None, None], now, [1, 1], [per_second, per_day])
        r.allowed, r.outcomes[0].remaining, r.states[1]
    """
    n = len(rules)
    outcomes: list[Outcome] = []
    nxt: list[Optional[State]] = []
    enforced = True
    shadow = True
    for i in range(n):
        rule = rules[i]
        s, o = evaluate(states[i], now, costs[i], rule)
        outcomes.append(o)
        nxt.append(s)
        if not o.allowed:
            if rule.shadow:
                shadow = False
            else:
                enforced = False
    every = enforced and shadow
    for i in range(n):
        rule = rules[i]
        if outcomes[i].allowed and not (every if rule.shadow else enforced):
            outcomes[i] = evaluate(states[i], now, 0, rule)[1]
            nxt[i] = None
    return SetResult(enforced, outcomes, nxt)


def compile_set(policies: Sequence[Any], force_shadow: bool) -> list[Rule]:
    """Compile the policies of a limit set. They must have distinct names (each keeps its own counters) and one
    key strategy (one identity is checked against all of them)."""
    if len(policies) == 0:
        raise HaltConfigError(
            "HALT_INVALID_POLICY_SET",
            "RateLimiter: policy is an empty list. Fix: give one policy, or several like "
            '[Policy(name="per_second", limit=10, window=1), Policy(name="per_day", limit=1000, window="1d")].',
        )
    rules = [compile_shadowed(p, force_shadow) for p in policies]
    names: set[str] = set()
    for r in rules:
        if r.name in names:
            raise HaltConfigError(
                "HALT_INVALID_POLICY_SET",
                f"RateLimiter: two policies of the set are named '{r.name}'; they would share counters. "
                "Fix: give each policy its own name.",
            )
        names.add(r.name)
    strategies = sorted({r.policy.key_strategy for r in rules if r.policy.key_strategy is not None})
    if len(strategies) > 1:
        raise HaltConfigError(
            "HALT_INVALID_POLICY_SET",
            f"RateLimiter: the policies of a set use different key strategies ({', '.join(strategies)}); one request "
            "has one identity. Fix: use one limiter per key strategy.",
        )
    return rules


def compile_shadowed(policy: Any, force_shadow: bool) -> Rule:
    """A policy compiled, shadow when ``force_shadow`` (a limiter with ``mode='shadow'``)."""
    if not force_shadow:
        return compile_policy(policy)
    return compile_policy(dataclasses.replace(to_policy(policy), mode="shadow"))


def combine(rules: Sequence[Rule], decisions: list[Decision]) -> Decision:
    """A set's decision from each policy's (``decisions[i]`` of ``rules[i]``, in order): the binding one is the most
    restrictive enforced decision (``more_restrictive``: a rejection with the longest wait, else the fewest
    remaining, then the latest reset; the first on a tie), with the longest shaping delay. When every policy is
    shadow the set admits: the most restrictive shadow decision's numbers, ``shadow=True``."""
    best: Optional[Decision] = None
    best_shadow: Optional[Decision] = None
    delay = 0.0
    for rule, d in zip(rules, decisions):
        if rule.shadow:
            d.shadow = True
            if best_shadow is None or more_restrictive(d, best_shadow):
                best_shadow = d
        else:
            if best is None or more_restrictive(d, best):
                best = d
            if d.delay > delay:
                delay = d.delay
    if best is None:
        b = cast(Decision, best_shadow)  # a set has at least one policy (compile_set)
        return Decision(True, b.limit, b.remaining, b.reset_at, 0, b.policy, None, 0.0, decisions, True)
    return Decision(
        best.allowed,
        best.limit,
        best.remaining,
        best.reset_at,
        best.retry_after,
        best.policy,
        best.reason,
        delay if best.allowed else 0.0,
        decisions,
    )
