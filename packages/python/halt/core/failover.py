"""What a limiter does when its store fails or is slow: per-call timeout, a circuit breaker, and the configured
outcome (fail open, fail closed, or an in-memory fallback until the store answers again)."""

from __future__ import annotations

import math
import threading

from typing_extensions import Literal

from halt.core.errors import HaltConfigError

OnStoreError = Literal["open", "closed", "fallback"]


class StoreTimeoutError(Exception):
    """Raised into the failure path when an async store call exceeds its timeout."""

    def __init__(self, ms: float) -> None:
        super().__init__(f"store call timed out after {ms} ms")


def _ms(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_failover(timeout: object, on_store_error: object, retry_store_after: object) -> tuple[float, str, float]:
    """The failover options, validated: (timeout ms, on_store_error, retry_store_after ms)."""
    t = 500 if timeout is None else timeout
    r = 1000 if retry_store_after is None else retry_store_after
    mode = "fallback" if on_store_error is None else on_store_error
    if not _ms(t) or not t > 0:  # type: ignore[operator]
        raise HaltConfigError(
            "HALT_INVALID_TIMEOUT",
            f"timeout must be a positive number of milliseconds, got {timeout!r}. Fix: timeout=500.",
        )
    if not _ms(r) or not r >= 0:  # type: ignore[operator]
        raise HaltConfigError(
            "HALT_INVALID_TIMEOUT",
            f"retry_store_after must be milliseconds >= 0, got {retry_store_after!r}. Fix: retry_store_after=1000.",
        )
    if mode not in ("open", "closed", "fallback"):
        raise HaltConfigError(
            "HALT_INVALID_ON_STORE_ERROR",
            f"on_store_error must be 'open', 'closed' or 'fallback', got {on_store_error!r}. "
            "Fix: on_store_error='fallback' (limit in memory while the store is down).",
        )
    return float(t), str(mode), float(r)  # type: ignore[arg-type]


class Circuit:
    """A circuit breaker over the store. Closed: every call goes to the store. After a failure it opens for
    ``retry_after`` ms (calls take the failure path without waiting); then one probe call goes to the store,
    and its result closes or reopens it. Thread-safe."""

    def __init__(self, retry_after: float) -> None:
        self._retry_after = retry_after
        self._open_until: float = 0
        self._probing = False
        self._lock = threading.Lock()
        self.failures = 0

    def allows(self, now: float) -> bool:
        """Whether this call may go to the store (at time ``now``, ms)."""
        if self._open_until == 0:
            return True
        with self._lock:
            if self._open_until == 0:
                return True
            if now < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        if self._open_until != 0:
            with self._lock:
                self._open_until = 0
                self._probing = False

    def failure(self, now: float) -> None:
        with self._lock:
            self.failures += 1
            self._probing = False
            self._open_until = now + max(1, self._retry_after)

    @property
    def is_open(self) -> bool:
        return self._open_until != 0
