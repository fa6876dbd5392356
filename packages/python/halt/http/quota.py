"""The HTTP ``quota`` option: a quota enforced on routes as one more limiter of the gate, answering 429
``quota_exceeded``. A port of packages/typescript/src/http/quota.ts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, TypeVar, Union

from ..core.errors import HaltConfigError
from ..core.managed import valid_cost as _valid_cost
from ..core.types import Decision
from ..telemetry.hub import request_id_of
from .headers import write_rate_limit_headers

if TYPE_CHECKING:
    from ..core.quota import Quota, QuotaLike, QuotaManager, QuotaResult

__all__ = ["QuotaGuard", "QuotaOption", "quota_guards"]

T = TypeVar("T")
_QUOTAS_MAX = 1000


@dataclass(frozen=True)
class QuotaOption:
    """A quota enforced by an adapter (``HaltMiddleware(app, limiter=..., quota=QuotaOption(manager, quota))``).

    It is checked after the limiters and only for requests they admitted; an exhausted quota answers 429 with
    ``{"error":"quota_exceeded", ..., "reset_at": ...}`` and ``Retry-After`` until the period ends.
    """

    #: A QuotaManager over any store.
    manager: QuotaManager
    #: The quota, or a function of the request choosing one (e.g. by plan: ``plans.quota_resolver(plan_of)``);
    #: None: not limited.
    quota: Union[QuotaLike, Callable[[Any], Optional[QuotaLike]]]
    #: Whose quota: default, the key the first limiter gives the request (its key strategy). Return None to leave
    #: a request unmetered.
    key: Optional[Callable[[Any], Optional[str]]] = None
    #: Units a request takes: a number or a function of the request. Default 1.
    cost: Union[float, Callable[[Any], float], None] = None
    #: When the quota's store fails: ``'open'`` (default) lets the request through, ``'closed'`` answers 503.
    on_store_error: str = "open"


def _exempt(policy: str) -> Decision:
    return Decision(True, 0, 0, 0, 0, policy, "exempt", 0.0)


class QuotaGuard:
    """The gate's limiter for one QuotaOption. Nothing a request carries can make its checks raise."""

    def __init__(self, option: Any, first: Any, adapter: str) -> None:
        from ..core.quota import QuotaManager, to_quota

        fix = (
            f"Fix: {adapter}(..., quota=QuotaOption(manager=QuotaManager(store), "
            "quota=Quota(name='api_calls', limit=10000, period='monthly')))."
        )
        if isinstance(option, Mapping):
            try:
                option = QuotaOption(**option)
            except TypeError as e:
                raise HaltConfigError("HALT_INVALID_QUOTA_OPTION", f"{adapter}: quota: {e}. {fix}") from e
        if not isinstance(option, QuotaOption) or not isinstance(option.manager, QuotaManager):
            raise HaltConfigError(
                "HALT_INVALID_QUOTA_OPTION", f"{adapter}: quota needs a QuotaManager as manager. {fix}"
            )
        self.manager: QuotaManager = option.manager
        #: What Gate.require_sync looks at: the quota's store.
        self.store = option.manager.store
        #: Quotas seen, by name (for has_policy and the IETF headers' window).
        self._quotas: dict[str, Quota] = {}
        q = option.quota
        if callable(q):
            self._quota_of: Callable[[Any], Optional[QuotaLike]] = q
        else:
            fixed = self.manager.define(q)  # validated now, at configuration time
            self._quotas[fixed.name] = fixed
            self._quota_of = lambda req: fixed
        self._to_quota = to_quota
        if option.key is not None:
            if not callable(option.key):
                raise HaltConfigError(
                    "HALT_INVALID_QUOTA_OPTION", f"{adapter}: quota.key must be a function of the request. {fix}"
                )
            self._key_of: Callable[[Any], Optional[str]] = option.key
        else:
            identify = getattr(first, "identify", None)
            if not callable(identify):
                raise HaltConfigError(
                    "HALT_INVALID_QUOTA_OPTION",
                    f"{adapter}: quota.key is required when the first limiter is not a RateLimiter. {fix}",
                )
            self._key_of = identify
        cost = 1 if option.cost is None else option.cost
        if callable(cost):
            self._cost_of: Callable[[Any], Any] = cost
        elif _valid_cost(cost):
            self._cost_of = lambda req: cost
        else:
            raise HaltConfigError(
                "HALT_INVALID_QUOTA_OPTION",
                f"{adapter}: quota.cost must be a finite number >= 0 or a function of the request, got {cost!r}.",
            )
        if option.on_store_error not in ("open", "closed"):
            raise HaltConfigError(
                "HALT_INVALID_QUOTA_OPTION",
                f"{adapter}: quota.on_store_error must be 'open' or 'closed', got {option.on_store_error!r}.",
            )
        self._mode: str = option.on_store_error
        self._closed = option.on_store_error == "closed"

    def check(self, req: Any, cost: Optional[float] = None, algorithm: Optional[str] = None) -> Decision:
        """Take the request's units of its quota (synchronous stores)."""
        r = self._resolve(req)
        if isinstance(r, Decision):
            return r
        key, q, c = r
        try:
            return _to_decision(
                self.manager.consume_quota(key, q, c, on_store_error=self._mode, request_id=request_id_of(req))
            )
        except Exception:
            return self._failed(q)

    async def acheck(self, req: Any, cost: Optional[float] = None, algorithm: Optional[str] = None) -> Decision:
        """Take the request's units of its quota (any store; never blocks the event loop)."""
        r = self._resolve(req)
        if isinstance(r, Decision):
            return r
        key, q, c = r
        try:
            return _to_decision(
                await self.manager.aconsume_quota(key, q, c, on_store_error=self._mode, request_id=request_id_of(req))
            )
        except Exception:
            return self._failed(q)

    def write_headers(self, d: Decision, format: str, target: T, set_header: Callable[[T, str, str], None]) -> None:
        if format != "ietf":
            write_rate_limit_headers(d, format, target, set_header)
            return
        q = self._quotas.get(d.policy)
        now = self.manager.clock()
        if q is None:
            window: float = d.reset_at - math.floor(now / 1000)
        else:
            p = self.manager.period(q)
            window = (p.end_ms - p.start_ms) / 1000
        write_rate_limit_headers(d, format, target, set_header, window, now)

    def has_policy(self, name: str) -> bool:
        return name in self._quotas

    def _resolve(self, req: Any) -> Union[Decision, tuple[str, Quota, float]]:
        """The request's key, quota and cost, or the exempt decision when it has none (or a callback raised)."""
        try:
            raw = self._quota_of(req)
            if raw is None:
                return _exempt("")
            q = self._to_quota(raw)
            key = self._key_of(req)
            c = self._cost_of(req)
        except Exception:
            return _exempt("")
        if key is None:
            return _exempt(q.name)
        if not _valid_cost(c):
            c = 1
        if q.name not in self._quotas and len(self._quotas) < _QUOTAS_MAX:
            self._quotas[q.name] = q
        return key, q, c

    def _failed(self, q: Quota) -> Decision:
        if not self._closed:
            return _exempt(q.name)
        return Decision(False, q.limit, 0, 0, 1, q.name, "store_error", 0.0)


def _to_decision(r: QuotaResult) -> Decision:
    q = r.quota
    return Decision(
        r.allowed, q.limit, q.remaining, q.reset_at, q.retry_after, q.name, None if r.allowed else "quota", 0.0
    )


def quota_guards(quota: Any, first: Any, adapter: str) -> list[QuotaGuard]:
    """The gate's limiters for an adapter's ``quota`` option: one QuotaOption (or mapping), or a list of them."""
    if quota is None:
        return []
    options: Sequence[Any] = quota if isinstance(quota, (list, tuple)) else [quota]
    return [QuotaGuard(o, first, adapter) for o in options]
