"""How QuotaManager and PenaltyManager call their store, in sync and async code (as the limiter does)."""

from __future__ import annotations

import asyncio
import functools
import math
from typing import Any, Callable, Optional

from halt.core.errors import HaltConfigError
from halt.core.policy import _positive as positive

__all__ = ["Clock", "StoreCalls", "checked_clock", "checked_id", "positive", "valid_cost"]

#: Milliseconds since the Unix epoch.
Clock = Callable[[], float]


class StoreCalls:
    """One store, called synchronously (``call``) or from a coroutine (``acall``).

    ``call`` on an asyncio store raises ``HALT_ASYNC_STORE`` naming the ``a``-method (a programming mistake, found
    on the first call). ``acall`` awaits an asyncio store, runs a synchronous remote store in the default executor
    (never blocking the event loop) and answers the in-memory store directly.
    """

    __slots__ = ("local", "owner", "store", "synchronous")

    def __init__(self, store: Any, owner: str) -> None:
        if store is None or not all(callable(getattr(store, m, None)) for m in ("consume", "peek", "reset", "clear")):
            raise HaltConfigError(
                "HALT_INVALID_STORE", f"{owner}: store must implement consume/peek/reset/clear (e.g. InMemoryStore())."
            )
        self.store = store
        self.owner = owner
        self.synchronous = bool(getattr(store, "synchronous", True))
        self.local = self.synchronous and not bool(getattr(store, "shared", False))

    def call(self, method: str, what: str, *args: Any) -> Any:
        if not self.synchronous:
            raise HaltConfigError(
                "HALT_ASYNC_STORE",
                f"{what}(): this {self.owner}'s store is asynchronous, so it answers only in async code. "
                f"Fix: await a{what}(...), or give a synchronous store (InMemoryStore, RedisStore).",
            )
        return getattr(self.store, method)(*args)

    async def acall(self, method: str, *args: Any) -> Any:
        fn = getattr(self.store, method)
        if not self.synchronous:
            return await fn(*args)
        if self.local:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


def checked_clock(clock: Optional[Clock], owner: str, default: Clock) -> Clock:
    """``clock``, or ``default`` when none is given; HALT_INVALID_CLOCK when it is not a function."""
    if clock is None:
        return default
    if not callable(clock):
        raise HaltConfigError(
            "HALT_INVALID_CLOCK",
            f"{owner}: clock must be a function returning epoch milliseconds, like lambda: time.time() * 1000.",
        )
    return clock


def checked_id(identifier: object, what: str, example: str) -> str:
    """An identifier, or HALT_INVALID_IDENTIFIER."""
    if isinstance(identifier, str):
        return identifier
    raise HaltConfigError(
        "HALT_INVALID_IDENTIFIER",
        f"{what}: the identifier must be a string such as '{example}', got {type(identifier).__name__}.",
    )


def valid_cost(c: object) -> bool:
    """A finite number >= 0 (not a bool): a cost, a severity."""
    return isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c >= 0
