"""PenaltyManager: an abuse score per identity that decays continuously; crossing a threshold starts a penalty that
grows with repeat offences. Over any store, atomically.

A port of packages/typescript/src/saas/penalty.ts (spec/saas/README.md §3): the same kernel, namespace and state, so
a penalty one SDK records is one the other sees.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from halt.core.algorithms import penalty_rule
from halt.core.errors import HaltConfigError
from halt.core.limiter import _now_ms
from halt.core.managed import Clock, StoreCalls, checked_clock, checked_id, positive, valid_cost
from halt.core.policy import Rule, compile_policy, duration_ms
from halt.core.types import Duration, Outcome

__all__ = ["Penalty", "PenaltyConfig", "PenaltyManager"]

_CACHE_MAX = 1000


@dataclass(frozen=True)
class PenaltyConfig:
    """How violations turn into penalties.

    Example::

        PenaltyConfig(threshold=10, duration="5m", multiplier=0.5, decay_rate=5, max_duration="2h")
    """

    #: Abuse score at which a penalty starts (e.g. 10 violations of severity 1).
    threshold: float
    #: Length of the first penalty: seconds or a duration string (``'5m'``). Each repeat offence doubles it, up to
    #: ``max_duration``.
    duration: Duration
    #: While penalised, a RateLimiter with ``penalties`` scales the identity's limit (and burst) by this, in (0, 1].
    #: Default 0.5.
    multiplier: Optional[float] = None
    #: Points per hour the abuse score loses, continuously (> 0). Default: ``threshold`` (a full score is forgotten
    #: in an hour).
    decay_rate: Optional[float] = None
    #: The longest penalty. Default 16 x ``duration`` (the fifth offence onwards).
    max_duration: Optional[Duration] = None
    #: Namespaces the scores: managers of different names never share them. Default ``'penalty'``.
    name: Optional[str] = None


class Penalty:
    """One identity's standing, as of the call that returned it."""

    __slots__ = ("_clock", "abuse_score", "offences", "penalty_until_ms")

    def __init__(self, abuse_score: float, penalty_until_ms: float, offences: int, clock: Clock) -> None:
        #: The abuse score after decay (and after the violation just recorded).
        self.abuse_score = abuse_score
        #: Epoch milliseconds when the current penalty ends; 0 when none is running.
        self.penalty_until_ms = penalty_until_ms
        #: Penalties started since the identity was last forgiven (score decayed to 0 with no penalty running).
        self.offences = offences
        self._clock = clock

    @property
    def penalty_until(self) -> int:
        """Epoch seconds when the current penalty ends; 0 when none is running."""
        return math.ceil(self.penalty_until_ms / 1000)

    def is_active(self, now: Optional[float] = None) -> bool:
        """Whether the penalty is running at ``now`` (epoch ms; default: the manager's clock now)."""
        return (self._clock() if now is None else now) < self.penalty_until_ms

    def __repr__(self) -> str:
        return (
            f"Penalty(abuse_score={self.abuse_score}, penalty_until_ms={self.penalty_until_ms}, "
            f"offences={self.offences})"
        )


def _config(config: object) -> PenaltyConfig:
    if isinstance(config, PenaltyConfig):
        return config
    if isinstance(config, Mapping):
        try:
            return PenaltyConfig(**config)
        except TypeError:
            pass
    raise HaltConfigError(
        "HALT_INVALID_PENALTY",
        "PenaltyManager needs config=PenaltyConfig(threshold=..., duration=...) (or a mapping of its fields), "
        f"got {config!r:.200}. Fix: PenaltyManager(PenaltyConfig(threshold=10, duration='5m')).",
    )


class PenaltyManager:
    """Penalties for abusive identities.

    ``record_violation`` adds ``severity`` to the identity's abuse score, which decays continuously at
    ``decay_rate`` points per hour; reaching ``threshold`` starts a penalty of ``duration``, doubled for each repeat
    offence up to ``max_duration``. Give it to a RateLimiter as ``penalties`` and every blocked request records a
    violation, while a penalised identity's limit is scaled by ``multiplier``. Each method has an ``a``-prefixed
    coroutine form.

    Example::

        penalties = PenaltyManager(PenaltyConfig(threshold=10, duration="5m", multiplier=0.5, decay_rate=5))
        p = penalties.record_violation("ip:203.0.113.7", 2)
        if p.is_active():
            print(f"penalised until {p.penalty_until}")
    """

    def __init__(
        self,
        config: Union[PenaltyConfig, Mapping[str, Any]],
        *,
        store: Optional[Any] = None,
        clock: Optional[Clock] = None,
    ) -> None:
        c = _config(config)
        name = "penalty" if c.name is None else c.name
        if not isinstance(name, str) or len(name) == 0 or len(name) > 200:
            raise HaltConfigError(
                "HALT_INVALID_PENALTY",
                f"penalty name must be a non-empty string of at most 200 characters, got {name!r}.",
            )
        if not positive(c.threshold):
            raise HaltConfigError(
                "HALT_INVALID_PENALTY",
                f"penalty '{name}': threshold must be a positive finite number, got {c.threshold!r}. "
                "Fix: threshold=10.",
            )
        ms = math.nan if c.duration is None else duration_ms(c.duration, "duration", name)
        if not ms >= 1:
            raise HaltConfigError(
                "HALT_INVALID_PENALTY",
                f"penalty '{name}': duration must be at least 1 ms, got {c.duration!r}. Fix: duration='5m'.",
            )
        max_ms = 16 * ms if c.max_duration is None else duration_ms(c.max_duration, "max_duration", name)
        if not max_ms >= ms or not math.isfinite(max_ms):
            raise HaltConfigError(
                "HALT_INVALID_PENALTY",
                f"penalty '{name}': max_duration must be finite and at least duration, got {c.max_duration!r}. "
                "Fix: omit it (16 x duration).",
            )
        multiplier = 0.5 if c.multiplier is None else c.multiplier
        if not positive(multiplier) or multiplier > 1:
            raise HaltConfigError(
                "HALT_INVALID_PENALTY",
                f"penalty '{name}': multiplier must be in (0, 1] (the share of the limit a penalised identity keeps), "
                f"got {c.multiplier!r}. Fix: multiplier=0.5.",
            )
        decay_rate = c.threshold if c.decay_rate is None else c.decay_rate
        if not positive(decay_rate):
            raise HaltConfigError(
                "HALT_INVALID_PENALTY",
                f"penalty '{name}': decay_rate must be a positive finite number of points per hour, "
                f"got {c.decay_rate!r}. Fix: decay_rate=5.",
            )
        if store is None:
            from halt.stores.memory import InMemoryStore

            store = InMemoryStore()
        self._calls = StoreCalls(store, "PenaltyManager")
        self.store = store
        self._clock = checked_clock(clock, "PenaltyManager", _now_ms)
        self.multiplier = multiplier
        #: The configuration with defaults applied (durations in seconds).
        self.config = PenaltyConfig(c.threshold, ms / 1000, multiplier, decay_rate, max_ms / 1000, name)
        #: The compiled kernel rule (namespace ``<name>:pen``).
        self.rule = penalty_rule(name, c.threshold, ms, decay_rate, max_ms)
        #: Penalised rules, once per rule: the same policy and state, limit and burst scaled by ``multiplier``.
        self._scaled: dict[Rule, Rule] = {}
        self._scaled_rules: set[Rule] = set()

    def record_violation(self, identifier: str, severity: float = 1, now: Optional[float] = None) -> Penalty:
        """Add a violation of ``severity`` (default 1) to ``identifier``'s score; the answer says whether a penalty
        is running."""
        t = self._now(now, severity)
        id = checked_id(identifier, "record_violation", "ip:203.0.113.7")
        return self._penalty(
            self._calls.call("consume", "record_violation", self.rule.ns, id, self.rule, t, severity), t
        )

    async def arecord_violation(self, identifier: str, severity: float = 1, now: Optional[float] = None) -> Penalty:
        t = self._now(now, severity)
        id = checked_id(identifier, "record_violation", "ip:203.0.113.7")
        return self._penalty(await self._calls.acall("consume", self.rule.ns, id, self.rule, t, severity), t)

    def get_penalty(self, identifier: str, now: Optional[float] = None) -> Penalty:
        """``identifier``'s standing now, without recording anything."""
        t = self._now(now, 0)
        id = checked_id(identifier, "get_penalty", "ip:203.0.113.7")
        return self._penalty(self._calls.call("peek", "get_penalty", self.rule.ns, id, self.rule, t), t)

    async def aget_penalty(self, identifier: str, now: Optional[float] = None) -> Penalty:
        t = self._now(now, 0)
        id = checked_id(identifier, "get_penalty", "ip:203.0.113.7")
        return self._penalty(await self._calls.acall("peek", self.rule.ns, id, self.rule, t), t)

    def clear_penalty(self, identifier: str) -> None:
        """Forgive ``identifier`` at once: score, penalty and offences."""
        self._calls.call("reset", "clear_penalty", self.rule.ns, checked_id(identifier, "clear_penalty", "ip:1.2.3.4"))

    async def aclear_penalty(self, identifier: str) -> None:
        await self._calls.acall("reset", self.rule.ns, checked_id(identifier, "clear_penalty", "ip:1.2.3.4"))

    def penalised(self, rule: Rule) -> Rule:
        """``rule`` as a penalised identity gets it: the same policy and namespace (so the same state), limit and
        burst scaled by ``multiplier`` (the capacity never below the policy's cost). Compiled once per rule."""
        r = self._scaled.get(rule)
        if r is None:
            m = self.multiplier
            windowed = rule.algorithm.windowed
            limit = max(rule.limit * m, rule.cost) if windowed else rule.limit * m
            burst = rule.burst * m if windowed else max(rule.burst * m, rule.cost)
            r = compile_policy(dataclasses.replace(rule.policy, limit=limit, burst=burst))
            if len(self._scaled) >= _CACHE_MAX:
                self._scaled.clear()
            self._scaled[rule] = r
            if len(self._scaled_rules) >= _CACHE_MAX:
                self._scaled_rules = set(self._scaled.values())
            self._scaled_rules.add(r)
        return r

    def is_penalised_rule(self, rule: Rule) -> bool:
        """Whether ``rule`` is one of this manager's penalised rules."""
        return rule in self._scaled_rules

    def _now(self, now: Optional[float], severity: object) -> float:
        if not valid_cost(severity):
            raise HaltConfigError(
                "HALT_INVALID_COST",
                f"record_violation: severity must be a finite number >= 0, got {severity!r}. Fix: 1.",
            )
        return self._clock() if now is None else now

    def _penalty(self, o: Outcome, now: float) -> Penalty:
        return Penalty(o.delay_ms, now + o.retry_after_ms if o.retry_after_ms > 0 else 0, int(o.remaining), self._clock)
