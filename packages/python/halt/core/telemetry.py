"""The telemetry hooks a limiter calls. Exporters (Prometheus, OpenTelemetry) build on these."""

from __future__ import annotations

from typing import Any, Optional

from halt.core.types import Decision


class DecisionEvent:
    """One decision, as telemetry sees it."""

    __slots__ = ("cost", "decision", "key", "request", "shadow", "store_error")

    def __init__(
        self,
        key: str,
        cost: float,
        decision: Decision,
        store_error: Optional[str] = None,
        request: Any = None,
        shadow: bool = False,
    ) -> None:
        #: The storage identity (``ip:203.0.113.7``, ``apikey:<hash>``...); exempt: the client's address key or ''.
        self.key = key
        self.cost = cost
        self.decision = decision
        #: Set when the store failed and the decision came from the failure policy ('open'/'closed'/'fallback').
        self.store_error = store_error
        #: The RequestView, when the check was made with one.
        self.request = request
        #: True for a shadow policy's decision: what it decided; the request was not rejected for it.
        self.shadow = shadow


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


class Telemetry:
    """Hooks a limiter calls; override the ones you need. A hook that raises never breaks a request: the
    exception is logged once per hook (logger ``halt``) and the request goes on.

    - ``on_check``: every decision of ``check()`` (exempt ones too, with reason ``'exempt'``).
    - ``on_allowed`` / ``on_blocked``: then one of these, by ``decision.allowed``.
    - ``on_near_limit``: an admitted request took a policy of a limit set from below the limiter's
      ``near_limit`` fraction (default 0.8) of its capacity to it or beyond (shadow ones too, ``event.shadow``).
    - ``on_error``: a store call failed or timed out; the failure policy decided.

    Example::

        class Log(Telemetry):
            def on_blocked(self, event):
                print("blocked", event.key, event.decision.retry_after)

        RateLimiter(policy=presets.PUBLIC_API, telemetry=Log())
    """

    def on_check(self, event: DecisionEvent) -> None:
        pass

    def on_allowed(self, event: DecisionEvent) -> None:
        pass

    def on_blocked(self, event: DecisionEvent) -> None:
        pass

    def on_near_limit(self, event: DecisionEvent) -> None:
        pass

    def on_error(self, event: StoreErrorEvent) -> None:
        pass
