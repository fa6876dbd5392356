"""Policy validation and compilation: a Policy (user data) becomes a Rule (the numbers algorithms read)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Mapping, Union

from halt.core.algorithms import ALGORITHMS, AlgorithmImpl
from halt.core.errors import HaltConfigError
from halt.core.types import Algorithm, Duration, KeyStrategy, Outcome, Policy

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_FIELDS = frozenset(f.name for f in dataclasses.fields(Policy))
MAX_PRECISION = 1000

#: What ``compile_policy`` accepts: a Policy, or a mapping of its fields.
PolicyLike = Union[Policy, Mapping[str, Any]]


class Rule:
    """A validated, compiled policy. Immutable by convention; algorithms read only these numbers."""

    __slots__ = (
        "__weakref__",
        "algorithm",
        "block_ms",
        "bucket_ms",
        "burst",
        "capacity",
        "cost",
        "emission",
        "gcra_slack",
        "limit",
        "name",
        "ns",
        "policy",
        "precision",
        "rate",
        "shadow",
        "shaping",
        "state_size",
        "step",
        "tau",
        "window_ms",
    )

    def __init__(
        self,
        policy: Policy,
        name: str,
        algorithm: AlgorithmImpl,
        limit: float,
        window_ms: float,
        burst: float,
        cost: float,
        precision: int,
        shaping: bool,
        block_ms: float,
    ) -> None:
        self.policy = policy
        self.name = name
        self.algorithm = algorithm
        self.step: Callable[[list[float], float, float, Rule], Outcome] = algorithm.step
        self.limit = limit
        self.window_ms = window_ms
        self.burst = burst
        self.cost = cost
        #: Units per millisecond (bucket algorithms).
        self.rate = limit / window_ms
        #: GCRA: ms per unit, the tolerance ``burst * T`` and the slack ``min(1 µs, T / 1000)``.
        self.emission = window_ms / limit
        self.tau = burst * self.emission
        self.gcra_slack = min(0.001, self.emission * 0.001)
        self.precision = precision
        self.bucket_ms = window_ms / precision
        self.shaping = shaping
        self.block_ms = block_ms
        #: ``mode='shadow'``: evaluated and reported, never rejects.
        self.shadow = policy.mode == "shadow"
        #: Storage namespace: policy name and algorithm code, e.g. ``api:tb``.
        self.ns = f"{name}:{algorithm.code}"
        self.state_size = algorithm.size(self)
        #: Most units one request may take: ``burst`` for bucket algorithms, ``limit`` for window ones.
        self.capacity = limit if algorithm.windowed else burst

    def with_algorithm(self, name: str) -> Rule:
        """The same policy under another algorithm (per-request override)."""
        return compile_policy(dataclasses.replace(self.policy, algorithm=name))

    def __repr__(self) -> str:
        return f"Rule({self.ns}, limit={self.limit}, window_ms={self.window_ms}, burst={self.burst})"


def _show(v: object) -> str:
    return f"'{v}'" if isinstance(v, str) else repr(v)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive(v: object) -> bool:
    return _number(v) and v > 0  # type: ignore[operator]


def duration_ms(value: Duration, field: str, policy_name: str) -> float:
    """Parse a duration (seconds, or ``'500ms' | '30s' | '1m' | '1h' | '1d'``) into milliseconds."""
    if _number(value):
        if value >= 0:  # type: ignore[operator]
            return float(value) * 1000
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_MS[m.group(2)]
    raise HaltConfigError(
        "HALT_INVALID_DURATION",
        f"policy '{policy_name}': {field} must be a number of seconds or a string like '30s', '1m', '1h', "
        f"got {_show(value)}. Fix: write e.g. {field}=60 or {field}='1m'.",
    )


def to_policy(policy: object) -> Policy:
    """A Policy from a Policy or a mapping of its fields (snake_case, as in Policy)."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        unknown = [k for k in policy if k not in _FIELDS]
        if unknown:
            raise HaltConfigError(
                "HALT_INVALID_POLICY",
                f"unknown policy field(s) {', '.join(map(str, unknown))}. Fix: use only {', '.join(sorted(_FIELDS))}.",
            )
        if "limit" not in policy or "window" not in policy:
            missing = "limit" if "limit" not in policy else "window"
            code = "HALT_INVALID_LIMIT" if missing == "limit" else "HALT_INVALID_WINDOW"
            name = policy.get("name", "default")
            raise HaltConfigError(code, f"policy '{name}': {missing} is required. Fix: {{'limit': 100, 'window': 60}}.")
        return Policy(**policy)
    raise HaltConfigError(
        "HALT_INVALID_POLICY",
        f"a policy must be a Policy or a mapping like {{'limit': 100, 'window': 60}}, got {_show(policy)}.",
    )


def compile_policy(policy: PolicyLike) -> Rule:
    """Validate a policy and compile it. Every mistake raises a HaltConfigError saying what is wrong and the fix."""
    p = to_policy(policy)
    name = "default" if p.name is None else p.name
    if not isinstance(name, str) or len(name) == 0 or len(name) > 200:
        raise HaltConfigError(
            "HALT_INVALID_POLICY_NAME",
            f"policy name must be a non-empty string of at most 200 characters, got {_show(name)}. Fix: name='api'.",
        )
    if not _positive(p.limit):
        raise HaltConfigError(
            "HALT_INVALID_LIMIT",
            f"policy '{name}': limit must be a positive finite number of requests per window, got {_show(p.limit)}. "
            "Fix: set limit to e.g. 100.",
        )
    if p.window is None:
        raise HaltConfigError(
            "HALT_INVALID_WINDOW", f"policy '{name}': window is required. Fix: window=60 (seconds) or window='1m'."
        )
    window_ms = duration_ms(p.window, "window", name)
    if not (window_ms >= 1) or not math.isfinite(window_ms):
        raise HaltConfigError(
            "HALT_INVALID_WINDOW",
            f"policy '{name}': window must be at least 1 ms, got {_show(p.window)}. "
            "Fix: window=60 (seconds) or window='1m'.",
        )
    algorithm_name = Algorithm.TOKEN_BUCKET if p.algorithm is None else p.algorithm
    if algorithm_name not in ALGORITHMS:
        raise HaltConfigError(
            "HALT_UNKNOWN_ALGORITHM",
            f"policy '{name}': unknown algorithm {_show(algorithm_name)}. "
            f"Fix: use one of {', '.join(Algorithm.ALL)} (the Algorithm constants).",
        )
    burst = p.limit if p.burst is None else p.burst
    if not _positive(burst):
        raise HaltConfigError(
            "HALT_INVALID_BURST",
            f"policy '{name}': burst must be a positive finite number, got {_show(p.burst)}. "
            "Fix: omit it (defaults to limit) or set it >= limit.",
        )
    cost = 1 if p.cost is None else p.cost
    if not _number(cost) or cost < 0:
        raise HaltConfigError(
            "HALT_INVALID_COST",
            f"policy '{name}': cost must be a finite number >= 0, got {_show(p.cost)}. Fix: cost=1.",
        )
    impl = ALGORITHMS[algorithm_name]
    windowed = impl.windowed
    capacity = p.limit if windowed else burst
    if cost > capacity:
        which = "limit" if windowed else "burst"
        raise HaltConfigError(
            "HALT_COST_EXCEEDS_CAPACITY",
            f"policy '{name}': the default cost {cost} is above the capacity {capacity} ({which}), so no request "
            f"could ever pass. Fix: raise {which} to at least {cost} or lower cost.",
        )
    precision = 10 if p.precision is None else p.precision
    if not isinstance(precision, int) or isinstance(precision, bool) or precision < 1 or precision > MAX_PRECISION:
        raise HaltConfigError(
            "HALT_INVALID_PRECISION",
            f"policy '{name}': precision must be a whole number from 1 to {MAX_PRECISION} (sub-buckets per window), "
            f"got {_show(p.precision)}. Fix: precision=10.",
        )
    mode = "meter" if p.leaky_mode is None else p.leaky_mode
    if mode not in ("meter", "shaping"):
        raise HaltConfigError(
            "HALT_INVALID_LEAKY_MODE", f"policy '{name}': leaky_mode must be 'meter' or 'shaping', got {_show(mode)}."
        )
    block_ms = 0.0 if p.block_duration is None else duration_ms(p.block_duration, "block_duration", name)
    if p.key_strategy is not None and p.key_strategy not in KeyStrategy.ALL:
        raise HaltConfigError(
            "HALT_UNKNOWN_KEY_STRATEGY",
            f"policy '{name}': unknown key_strategy {_show(p.key_strategy)}. "
            f"Fix: use one of {', '.join(KeyStrategy.ALL)} (the KeyStrategy constants).",
        )
    if p.mode is not None and p.mode not in ("enforce", "shadow"):
        raise HaltConfigError(
            "HALT_INVALID_MODE",
            f"policy '{name}': mode must be 'enforce' or 'shadow', got {_show(p.mode)}. "
            "Fix: omit it (enforce) or mode='shadow' to only report.",
        )
    return Rule(p, name, impl, p.limit, window_ms, burst, cost, precision, mode == "shaping", block_ms)
