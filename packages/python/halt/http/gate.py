"""Gate: limiters applied to a request as adapters use them (first rejection wins; headers: the most restrictive)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Sequence, TypeVar, Union, cast

from typing_extensions import Protocol

from ..core.errors import HaltConfigError
from .headers import is_header_format, more_restrictive, write_rate_limit_headers
from .quota import quota_guards
from .request import RequestView

if TYPE_CHECKING:
    from ..core.types import Decision

__all__ = ["DECISION_KEY", "Gate", "HttpLimiter", "check_callbacks"]

T = TypeVar("T")

#: Where adapters remember what the response describes (in the ASGI scope, flask.g or the Django request).
DECISION_KEY = "halt.decision"


class HttpLimiter(Protocol):
    """What an adapter needs of a limiter (a ``RateLimiter`` over any store is one)."""

    def check(self, key: Any, *, cost: Optional[float] = ..., algorithm: Optional[str] = ...) -> Decision: ...

    def acheck(
        self, key: Any, *, cost: Optional[float] = ..., algorithm: Optional[str] = ...
    ) -> Awaitable[Decision]: ...

    def write_headers(
        self, d: Decision, format: str, target: Any, set_header: Callable[[Any, str, str], None]
    ) -> None: ...

    def has_policy(self, name: str) -> bool: ...


class Gate:
    """Applies limiters to requests for an adapter.

    Limiters are checked in order; the first rejection stops the rest (they consume nothing). When all admit,
    the response describes the most restrictive decision; a request exempt under every limiter gets
    ``reason='exempt'``. ``sync_only``: the adapter only calls ``check`` (WSGI), so an asyncio store is refused
    here, at configuration, rather than failing each request. ``quota``: a QuotaOption (or a list of them)
    enforced after the limiters; an exhausted quota answers 429 ``quota_exceeded`` (docs/saas.md).

    Example::

        gate = Gate([app_limiter, route_limiter], headers="ietf")
        d = gate.check(view)           # sync stores (memory, RedisStore)
        d = await gate.acheck(view)    # async stores too
    """

    __slots__ = ("_single", "format", "limiters")

    def __init__(
        self,
        limiter: Union[HttpLimiter, Sequence[HttpLimiter]],
        headers: str = "standard",
        adapter: str = "HaltMiddleware",
        sync_only: bool = False,
        quota: Any = None,
    ) -> None:
        items: list[HttpLimiter] = list(limiter) if isinstance(limiter, (list, tuple)) else [cast(HttpLimiter, limiter)]
        if len(items) == 0 or any(not callable(getattr(x, "check", None)) for x in items):
            raise HaltConfigError(
                "HALT_INVALID_LIMITER",
                f"{adapter}(limiter): pass a RateLimiter (or a non-empty list of them). "
                f"Fix: {adapter}(limiter=RateLimiter(policy=presets.PUBLIC_API)).",
            )
        if not is_header_format(headers):
            raise HaltConfigError(
                "HALT_INVALID_HEADER_FORMAT",
                f"{adapter}: headers must be 'standard', 'ietf', 'legacy' or 'none', got {headers!r}.",
            )
        # The quota option: one more limiter per quota, after the others (only requests they admit take units).
        items += quota_guards(quota, items[0], adapter)
        self.limiters: tuple[HttpLimiter, ...] = tuple(items)
        if sync_only:
            self.require_sync(adapter)
        self.format: str = headers
        self._single: Optional[HttpLimiter] = items[0] if len(items) == 1 else None

    def require_sync(self, adapter: str) -> None:
        """Raise HALT_ASYNC_STORE if a limiter's store answers only in async code (the caller is synchronous)."""
        for x in self.limiters:
            store = getattr(x, "store", None)
            if getattr(store, "synchronous", True) is False:
                raise HaltConfigError(
                    "HALT_ASYNC_STORE",
                    f"{adapter}: this code path is synchronous, but a limiter's store ({type(store).__name__}) "
                    "answers only in async code. Fix: give it a synchronous store (InMemoryStore, RedisStore), "
                    "or run it async (FastAPI, Django under ASGI, an async Django view).",
                )

    def check(self, req: RequestView) -> Decision:
        """The governing decision for ``req`` (synchronous limiters)."""
        if self._single is not None:
            return self._single.check(req)
        best: Optional[Decision] = None
        for limiter in self.limiters:
            d = limiter.check(req)
            if not d.allowed:
                return d
            best = _pick(d, best)
        assert best is not None
        return best

    async def acheck(self, req: RequestView) -> Decision:
        """The governing decision for ``req``, awaiting each limiter's async check (never blocks the event loop)."""
        if self._single is not None:
            return await self._single.acheck(req)
        best: Optional[Decision] = None
        for limiter in self.limiters:
            d = await limiter.acheck(req)
            if not d.allowed:
                return d
            best = _pick(d, best)
        assert best is not None
        return best

    def write_headers(self, d: Decision, target: T, set_header: Callable[[T, str, str], None]) -> None:
        """Write ``d``'s headers (in this gate's format) with ``set_header``."""
        if self.format != "ietf":
            write_rate_limit_headers(d, self.format, target, set_header)
            return
        # The IETF fields need the deciding policy's window and the limiter's clock.
        limiter = self._single if self._single is not None else self._limiter_of(d.policy)
        limiter.write_headers(d, self.format, target, set_header)

    def _limiter_of(self, policy: str) -> HttpLimiter:
        for limiter in self.limiters:
            has = getattr(limiter, "has_policy", None)
            if has is not None and has(policy):
                return limiter
        return self.limiters[0]


def check_callbacks(adapter: str, **callbacks: object) -> None:
    """Raise HaltConfigError for an adapter option that should be a function and is not."""
    for name, fn in callbacks.items():
        if fn is not None and not callable(fn):
            raise HaltConfigError(
                "HALT_INVALID_CALLBACK", f"{adapter}: {name} must be a function, got {type(fn).__name__}."
            )


def _pick(d: Decision, best: Optional[Decision]) -> Decision:
    return d if best is None or more_restrictive(d, best) else best
