"""Core types shared by algorithms, stores and the limiter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from typing_extensions import Literal


class Algorithm:
    """The five algorithms. Use these constants rather than raw strings."""

    TOKEN_BUCKET = "token_bucket"
    FIXED_WINDOW = "fixed_window"
    SLIDING_WINDOW = "sliding_window"
    LEAKY_BUCKET = "leaky_bucket"
    GCRA = "gcra"

    ALL = ("token_bucket", "fixed_window", "sliding_window", "leaky_bucket", "gcra")


class KeyStrategy:
    """How the HTTP layer turns a request into an identity."""

    IP = "ip"
    USER = "user"
    API_KEY = "api_key"
    COMPOSITE = "composite"
    CUSTOM = "custom"

    ALL = ("ip", "user", "api_key", "composite", "custom")


AlgorithmName = Literal["token_bucket", "fixed_window", "sliding_window", "leaky_bucket", "gcra"]
KeyStrategyName = Literal["ip", "user", "api_key", "composite", "custom"]
Reason = Literal["limit", "cooldown", "penalty", "exempt", "store_error", "cost_exceeds_capacity", "quota"]

#: Seconds as a number, or a string such as ``'500ms'``, ``'30s'``, ``'1m'``, ``'1h'``, ``'1d'``.
Duration = Union[int, float, str]


@dataclass(frozen=True)
class Policy:
    """A rate-limiting policy: plain data, validated when the limiter is created.

    Example::

        Policy(name="api", limit=100, window="1m", burst=120)
    """

    #: Units (requests, or cost units) per window.
    limit: float
    #: Window length: seconds, or a duration string like ``'1m'``.
    window: Duration
    #: Namespaces the counters: two policies never share state.
    name: str = "default"
    #: Capacity of bucket-style algorithms (token bucket, GCRA, leaky bucket). Defaults to ``limit``.
    burst: Optional[float] = None
    #: Default ``token_bucket``.
    algorithm: Optional[str] = None
    #: Default cost of one request. Default 1.
    cost: Optional[float] = None
    #: Cooldown after the limit is exceeded: every request is rejected for this long. Default 0.
    block_duration: Optional[Duration] = None
    #: Sliding window only: sub-buckets per window. Default 10.
    precision: Optional[int] = None
    #: Leaky bucket only: ``'meter'`` rejects when full (default); ``'shaping'`` admits with a ``delay``.
    leaky_mode: Optional[str] = None
    #: HTTP layer: how a request maps to an identity. Default ``ip``.
    key_strategy: Optional[str] = None
    #: ``'enforce'`` (default) or ``'shadow'``: a shadow policy is evaluated and reported (telemetry events with
    #: ``shadow=True``, ``stats().shadow_blocked``) but never rejects nor adds headers. Its counters are the
    #: policy's own, so switching it to ``'enforce'`` later keeps them.
    mode: Optional[str] = None


class Decision:
    """The outcome of one check, as returned by ``limiter.check()``."""

    __slots__ = (
        "allowed",
        "delay",
        "limit",
        "policies",
        "policy",
        "reason",
        "remaining",
        "reset_at",
        "retry_after",
        "shadow",
    )

    def __init__(
        self,
        allowed: bool,
        limit: float,
        remaining: int,
        reset_at: int,
        retry_after: int,
        policy: str,
        reason: Optional[str] = None,
        delay: float = 0.0,
        policies: Optional[list[Decision]] = None,
        shadow: bool = False,
    ) -> None:
        self.allowed = allowed
        #: The policy's limit (units per window).
        self.limit = limit
        #: Whole units left after this check.
        self.remaining = remaining
        #: Epoch seconds at which the limit is fully available again.
        self.reset_at = reset_at
        #: Seconds until a request of this cost can pass; 0 when allowed.
        self.retry_after = retry_after
        #: Name of the policy that decided.
        self.policy = policy
        #: Why it was rejected (or ``'exempt'``); None for a plain admission.
        self.reason = reason
        #: Leaky bucket in shaping mode: seconds the caller should wait before serving. Otherwise 0.
        self.delay = delay
        #: A limiter with several policies (or shadow ones): each policy's own decision, in the limiter's order. A
        #: policy that would have admitted a request the others rejected reports its state as it stands.
        self.policies = policies
        #: True on the decision of a shadow policy (in ``policies``, and in telemetry), and on the decision of a
        #: limiter whose every policy is shadow: that one always admits and sends no headers.
        self.shadow = shadow

    def __repr__(self) -> str:
        extra = "" if self.policies is None else f", policies={self.policies!r}"
        extra += ", shadow=True" if self.shadow else ""
        return (
            f"Decision(allowed={self.allowed}, limit={self.limit}, remaining={self.remaining}, "
            f"reset_at={self.reset_at}, retry_after={self.retry_after}, policy={self.policy!r}, "
            f"reason={self.reason!r}, delay={self.delay}{extra})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in self.__slots__}


class Outcome:
    """What an algorithm step produces, in milliseconds (the spec's outcome). Stores return it."""

    __slots__ = ("allowed", "delay_ms", "expires_at_ms", "reason", "remaining", "reset_at_ms", "retry_after_ms")

    def __init__(
        self,
        allowed: bool,
        remaining: int,
        reset_at_ms: float,
        retry_after_ms: float,
        reason: Optional[str],
        delay_ms: float = 0,
        expires_at_ms: float = 0,
    ) -> None:
        self.allowed = allowed
        self.remaining = remaining
        self.reset_at_ms = reset_at_ms
        self.retry_after_ms = retry_after_ms
        #: None when allowed, else 'limit', 'cooldown' or 'cost_exceeds_capacity'.
        self.reason = reason
        self.delay_ms = delay_ms
        #: When the state becomes equivalent to a fresh one: the key's expiry.
        self.expires_at_ms = expires_at_ms

    def __repr__(self) -> str:
        return "Outcome(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__) + ")"
