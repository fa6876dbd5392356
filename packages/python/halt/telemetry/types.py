"""What a limiter tells telemetry: the events and the hooks. Exporters (logging, metrics, Prometheus, OpenTelemetry)
implement the hooks."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

from halt.core.types import Decision

__all__ = ["DecisionEvent", "StoreErrorEvent", "Telemetry", "TelemetryOption"]


class DecisionEvent:
    """One decision of ``check()``, as telemetry sees it. It never carries the request itself nor any raw header
    value (an API key is only ever seen hashed, inside ``key``)."""

    __slots__ = ("cost", "decision", "duration_ms", "key", "request_id", "shadow", "store_error")

    def __init__(
        self,
        key: str,
        cost: float,
        decision: Decision,
        store_error: Optional[str] = None,
        shadow: bool = False,
        request_id: Optional[str] = None,
        duration_ms: Optional[float] = None,
    ) -> None:
        #: The storage identity (``ip:203.0.113.7``, ``apikey:<hash>``...); exempt: the client's address key or ''.
        self.key = key
        self.cost = cost
        self.decision = decision
        #: Set when the store failed and the decision came from the failure policy ('open'/'closed'/'fallback').
        self.store_error = store_error
        #: True for a policy in shadow mode: ``decision`` says what it decided, and the request was admitted anyway.
        self.shadow = shadow
        #: For a check made with a request: its ``X-Request-Id`` (printable, at most 64 characters), or a made-up id.
        self.request_id = request_id
        #: Milliseconds the check took, the store call included (None for exempt requests, which reach no store).
        self.duration_ms = duration_ms

    def __repr__(self) -> str:
        return "DecisionEvent(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__) + ")"


class StoreErrorEvent:
    """A store call that failed or timed out."""

    __slots__ = ("action", "error", "key", "operation", "policy")

    def __init__(self, error: BaseException, key: str, policy: str, operation: str, action: str) -> None:
        self.error = error
        self.key = key
        self.policy = policy
        #: 'check' or 'peek'.
        self.operation = operation
        #: What the limiter did instead: 'open', 'closed' or 'fallback'.
        self.action = action

    def __repr__(self) -> str:
        return "StoreErrorEvent(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__) + ")"


class Telemetry:
    """Hooks a limiter calls; override the ones you need (any object with some of these methods, or a mapping of
    hook names to functions, does as well). A hook that raises, or a coroutine hook that fails, never affects the
    request: it is reported once as the warning ``HALT_TELEMETRY_HOOK_FAILED``. Coroutine hooks are not awaited.

    For each decision: ``on_check``, then ``on_allowed`` (exempt requests included) or ``on_blocked``. A store
    failure reaches ``on_error`` first; the decision the failure policy then takes follows with ``store_error`` set.
    ``on_near_limit``: an admitted request took a policy from below the limiter's ``near_limit`` fraction (default
    0.8) of its capacity to it or beyond.

    Example::

        class Log(Telemetry):
            def on_blocked(self, event):
                print("blocked", event.key, event.decision.retry_after)

        RateLimiter(policy=presets.PUBLIC_API, telemetry=[LoggingTelemetry(), Log()])
    """

    def on_check(self, event: DecisionEvent) -> Any:
        pass

    def on_allowed(self, event: DecisionEvent) -> Any:
        pass

    def on_blocked(self, event: DecisionEvent) -> Any:
        pass

    def on_near_limit(self, event: DecisionEvent) -> Any:
        pass

    def on_error(self, event: StoreErrorEvent) -> Any:
        pass


#: The ``telemetry`` option: one sink, or several (a list or tuple) called in order.
TelemetryOption = Union[object, Mapping[str, Any], Sequence[object]]
