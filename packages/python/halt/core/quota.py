"""QuotaManager: calendar quotas (hourly .. yearly, in an IANA time zone) over any store, atomically.

A port of packages/typescript/src/saas/quota.ts (spec/saas/README.md §2): the same kernel, namespaces and state, so a
Node and a Python service consume one quota.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from halt.core.algorithms.quota import quota_rule
from halt.core.calendar import PERIODS, PeriodBounds, QuotaPeriod, check_time_zone, period_bounds
from halt.core.errors import HaltConfigError
from halt.core.limiter import _now_ms, _perf_ms
from halt.core.managed import Clock, StoreCalls, checked_clock, checked_id, positive, valid_cost
from halt.core.policy import Rule
from halt.core.types import Decision, Outcome
from halt.http.warnings import Warnings
from halt.telemetry.hub import TelemetryHub
from halt.telemetry.types import DecisionEvent, StoreErrorEvent, TelemetryOption

__all__ = [
    "Quota",
    "QuotaLike",
    "QuotaManager",
    "QuotaPeriod",
    "QuotaResult",
    "QuotaState",
    "to_quota",
    "validate_quota",
]

_FIELDS = ("name", "limit", "period", "time_zone")
_CACHE_MAX = 1000


@dataclass(frozen=True)
class Quota:
    """A quota: ``limit`` units per calendar period, reset at the period's boundary (a monthly quota on the 1st at
    00:00) in ``time_zone`` (default: the manager's, itself UTC by default).

    Example::

        api_calls = Quota(name="api_calls", limit=10_000, period=QuotaPeriod.MONTHLY)
    """

    #: Namespaces the counters (with the period and time zone): quotas of different names never share state.
    name: str
    #: Units per period (a positive finite number).
    limit: float
    #: One of the QuotaPeriod constants.
    period: str
    #: IANA time zone whose calendar sets the boundaries, e.g. ``'Europe/Berlin'``. Default: the manager's.
    time_zone: Optional[str] = None


#: What the managers and the HTTP ``quota`` option accept: a Quota, or a mapping of its fields.
QuotaLike = Union[Quota, Mapping[str, Any]]


@dataclass(frozen=True)
class QuotaState:
    """Where a quota stands for one identity."""

    name: str
    limit: float
    #: Units used in the current period (whole units: ``limit - remaining``).
    used: float
    #: Whole units left in the current period.
    remaining: int
    #: Epoch seconds when the current period ends and the quota is whole again.
    reset_at: int
    #: Epoch seconds when the current period started.
    period_start: int
    #: Seconds until a request of this cost fits (the period's end); 0 when allowed.
    retry_after: int


@dataclass(frozen=True)
class QuotaResult:
    """The answer of ``check_quota``, ``consume_quota`` and ``refund_quota``.

    ``allowed``: ``consume_quota``: the units were taken; ``check_quota``: they would be; ``refund_quota``: always.
    """

    allowed: bool
    quota: QuotaState


class _Period:
    __slots__ = ("consume", "end_ms", "refund", "start_ms")

    def __init__(self, name: str, limit: float, b: PeriodBounds) -> None:
        self.start_ms = b.start_ms
        self.end_ms = b.end_ms
        self.consume = quota_rule(name, limit, b.start_ms, b.end_ms, False)
        self.refund = quota_rule(name, limit, b.start_ms, b.end_ms, True)


class _Compiled:
    """A quota, validated, with the rules of its current period (compiled once per period)."""

    __slots__ = ("current", "ns", "quota", "time_zone")

    def __init__(self, quota: Quota, ns: str, time_zone: str) -> None:
        self.quota = quota
        self.ns = ns
        self.time_zone = time_zone
        self.current: Optional[_Period] = None


#: Warnings of the managers' telemetry hooks (a failing hook is reported once), logged to logger ``halt``.
_warnings = Warnings(None, None)


def to_quota(quota: object) -> Quota:
    """A Quota from a Quota or a mapping of its fields."""
    if isinstance(quota, Quota):
        return quota
    if isinstance(quota, Mapping) and all(k in _FIELDS for k in quota):
        try:
            return Quota(**quota)
        except TypeError:
            pass
    raise HaltConfigError(
        "HALT_INVALID_QUOTA",
        "a quota must be a Quota or a mapping like {'name': 'api_calls', 'limit': 10000, 'period': 'monthly'} "
        f"(fields {', '.join(_FIELDS)}), got {quota!r:.200}.",
    )


def validate_quota(quota: QuotaLike) -> Quota:
    """Check a quota's fields; every mistake is a HaltConfigError saying how to fix it. Returns it as a Quota."""
    q = to_quota(quota)
    if not isinstance(q.name, str) or len(q.name) == 0 or len(q.name) > 200:
        raise HaltConfigError(
            "HALT_INVALID_QUOTA",
            f"quota name must be a non-empty string of at most 200 characters, got {q.name!r}. Fix: name='api_calls'.",
        )
    if not positive(q.limit):
        raise HaltConfigError(
            "HALT_INVALID_QUOTA",
            f"quota '{q.name}': limit must be a positive finite number of units per period, got {q.limit!r}. "
            "Fix: limit=10000.",
        )
    if q.period not in PERIODS:
        raise HaltConfigError(
            "HALT_INVALID_QUOTA",
            f"quota '{q.name}': period must be one of {', '.join(PERIODS)} (the QuotaPeriod constants), "
            f"got {q.period!r}.",
        )
    if q.time_zone is not None:
        check_time_zone(q.time_zone)
    return q


def _checked_cost(cost: object, what: str) -> float:
    if valid_cost(cost):
        return cost  # type: ignore[return-value]
    raise HaltConfigError(
        "HALT_INVALID_COST",
        f"{what}: cost must be a finite number >= 0, got {cost!r}. Fix: omit it (1) or pass e.g. 5.",
    )


class QuotaManager:
    """Quotas over a store: ``consume_quota`` takes units atomically (never more than the limit, however many
    processes consume at once), ``check_quota`` reads without taking, ``refund_quota`` gives units back for work
    that failed. Each has an ``a``-prefixed coroutine form, as the limiter's methods do.

    ``telemetry`` (a Telemetry, as a limiter takes) is told of every ``consume_quota``: ``on_check``, then
    ``on_allowed`` or ``on_blocked`` with reason ``'quota'``, the quota's name as the policy. A failed store call
    reaches ``on_error`` and raises (the caller, e.g. the HTTP option's ``on_store_error``, decides what then
    happens).

    Example::

        quotas = QuotaManager(InMemoryStore())
        monthly = quotas.define(Quota(name="api_calls", limit=10_000, period=QuotaPeriod.MONTHLY))
        r = quotas.consume_quota("user:42", monthly)
        if not r.allowed:
            print(f"quota used up until {r.quota.reset_at}")
    """

    def __init__(
        self,
        store: Optional[Any] = None,
        *,
        time_zone: str = "UTC",
        clock: Optional[Clock] = None,
        telemetry: Optional[TelemetryOption] = None,
    ) -> None:
        if store is None:
            from halt.stores.memory import InMemoryStore

            store = InMemoryStore()
        self._calls = StoreCalls(store, "QuotaManager")
        self.store = store
        self.time_zone = check_time_zone(time_zone)
        #: The manager's clock (epoch ms).
        self.clock = checked_clock(clock, "QuotaManager", _now_ms)
        self.telemetry = telemetry
        self._telemetry = None if telemetry is None else TelemetryHub(telemetry, _warnings.warn)
        self._compiled: dict[Quota, _Compiled] = {}

    def define(self, quota: QuotaLike) -> Quota:
        """Validate a quota now (configuration time) rather than at its first use; returns it as a Quota.

        Example::

            monthly = quotas.define({"name": "api_calls", "limit": 10_000, "period": "monthly"})
        """
        return self._compile(quota).quota

    def check_quota(self, identifier: str, quota: QuotaLike, cost: float = 1) -> QuotaResult:
        """Whether ``cost`` units (default 1) would fit now, without taking them."""
        c = _checked_cost(cost, "check_quota")
        q, rule, now, id = self._prepare(identifier, quota, False, "check_quota")
        return self._result(self._calls.call("peek", "check_quota", rule.ns, id, rule, now), q, rule, now, c, "check")

    async def acheck_quota(self, identifier: str, quota: QuotaLike, cost: float = 1) -> QuotaResult:
        c = _checked_cost(cost, "check_quota")
        q, rule, now, id = self._prepare(identifier, quota, False, "check_quota")
        return self._result(await self._calls.acall("peek", rule.ns, id, rule, now), q, rule, now, c, "check")

    def consume_quota(
        self,
        identifier: str,
        quota: QuotaLike,
        cost: float = 1,
        *,
        on_store_error: str = "closed",
        request_id: Optional[str] = None,
    ) -> QuotaResult:
        """Take ``cost`` units (default 1) if they fit: atomic, never beyond the limit. Nothing is taken when they
        do not fit. A store failure is told to telemetry's ``on_error`` (its action: ``on_store_error``, what the
        caller does then; the HTTP option passes its own) and raises. ``request_id`` goes on the decision event
        (the HTTP option passes the request's, the same as its limiters' events)."""
        c = _checked_cost(cost, "consume_quota")
        q, rule, now, id = self._prepare(identifier, quota, False, "consume_quota")
        t0 = 0.0 if self._telemetry is None else _perf_ms()
        try:
            o = self._calls.call("consume", "consume_quota", rule.ns, id, rule, now, c)
        except HaltConfigError:
            raise
        except Exception as e:
            self._failed(e, id, q, on_store_error)
            raise
        return self._report(id, c, self._result(o, q, rule, now, c, "consume"), t0, request_id)

    async def aconsume_quota(
        self,
        identifier: str,
        quota: QuotaLike,
        cost: float = 1,
        *,
        on_store_error: str = "closed",
        request_id: Optional[str] = None,
    ) -> QuotaResult:
        c = _checked_cost(cost, "consume_quota")
        q, rule, now, id = self._prepare(identifier, quota, False, "consume_quota")
        t0 = 0.0 if self._telemetry is None else _perf_ms()
        try:
            o = await self._calls.acall("consume", rule.ns, id, rule, now, c)
        except Exception as e:
            self._failed(e, id, q, on_store_error)
            raise
        return self._report(id, c, self._result(o, q, rule, now, c, "consume"), t0, request_id)

    def refund_quota(self, identifier: str, quota: QuotaLike, cost: float = 1) -> QuotaResult:
        """Give back ``cost`` units (default 1) of the current period, e.g. for a call that failed; never below 0."""
        c = _checked_cost(cost, "refund_quota")
        q, rule, now, id = self._prepare(identifier, quota, True, "refund_quota")
        return self._result(
            self._calls.call("consume", "refund_quota", rule.ns, id, rule, now, c), q, rule, now, c, "refund"
        )

    async def arefund_quota(self, identifier: str, quota: QuotaLike, cost: float = 1) -> QuotaResult:
        c = _checked_cost(cost, "refund_quota")
        q, rule, now, id = self._prepare(identifier, quota, True, "refund_quota")
        return self._result(await self._calls.acall("consume", rule.ns, id, rule, now, c), q, rule, now, c, "refund")

    def reset_quota(self, identifier: str, quota: QuotaLike) -> None:
        """Forget ``identifier``'s usage of ``quota`` (every period)."""
        q = self._compile(quota)
        self._calls.call("reset", "reset_quota", q.ns, checked_id(identifier, "reset_quota", "user:42"))

    async def areset_quota(self, identifier: str, quota: QuotaLike) -> None:
        q = self._compile(quota)
        await self._calls.acall("reset", q.ns, checked_id(identifier, "reset_quota", "user:42"))

    def period(self, quota: QuotaLike) -> PeriodBounds:
        """The current period of ``quota`` (epoch ms), as the manager's clock and the quota's time zone give it."""
        q = self._compile(quota)
        return period_bounds(q.quota.period, self.clock(), q.time_zone)

    def namespace(self, quota: QuotaLike) -> str:
        """The storage namespace of a quota's counters (spec/KEYS.md): ``quota:<name>:<period>:<time zone>:q``."""
        return self._compile(quota).ns

    # ---- internals -------------------------------------------------------------------------------------

    def _prepare(
        self, identifier: object, quota: QuotaLike, refund: bool, what: str
    ) -> tuple[_Compiled, Rule, float, str]:
        """The compiled quota, the rule of the period holding now (compiled when the period changes), now, the id."""
        q = self._compile(quota)
        now = self.clock()
        cur = q.current
        if cur is None or now < cur.start_ms or now >= cur.end_ms:
            cur = _Period(q.ns[:-2], q.quota.limit, period_bounds(q.quota.period, now, q.time_zone))
            q.current = cur  # one assignment: threads see the old period or the new one
        return q, cur.refund if refund else cur.consume, now, checked_id(identifier, what, "user:42")

    def _result(self, o: Outcome, q: _Compiled, rule: Rule, now: float, cost: float, op: str) -> QuotaResult:
        ok = o.allowed if op == "consume" else (o.remaining + 1e-9 >= cost) if op == "check" else True
        limit = rule.limit
        return QuotaResult(
            ok,
            QuotaState(
                q.quota.name,
                limit,
                max(0, limit - o.remaining),
                o.remaining,
                math.ceil(o.reset_at_ms / 1000),
                math.floor(rule.burst / 1000),
                0 if ok else math.ceil(max(1, o.reset_at_ms - now) / 1000),
            ),
        )

    def _report(self, key: str, cost: float, r: QuotaResult, t0: float, request_id: Optional[str]) -> QuotaResult:
        """Tell telemetry of a consume_quota decision (reason 'quota' when rejected), as a limiter tells of its."""
        t = self._telemetry
        if t is None:
            return r
        s = r.quota
        d = Decision(r.allowed, s.limit, s.remaining, s.reset_at, s.retry_after, s.name, None if r.allowed else "quota")
        t.decision(DecisionEvent(key, cost, d, request_id=request_id, duration_ms=_perf_ms() - t0))
        return r

    def _failed(self, error: Exception, key: str, q: _Compiled, action: str) -> None:
        if self._telemetry is not None:
            self._telemetry.error(StoreErrorEvent(error, key, q.quota.name, "check", action))

    def _compile(self, quota: QuotaLike) -> _Compiled:
        q = quota if isinstance(quota, Quota) else to_quota(quota)
        try:
            c = self._compiled.get(q)
        except TypeError:  # an unhashable field (a list as the limit, ...): say what is wrong with it
            validate_quota(q)
            raise HaltConfigError("HALT_INVALID_QUOTA", f"quota fields must be plain values, got {q!r:.200}.") from None
        if c is not None:
            return c
        validate_quota(q)
        time_zone = check_time_zone(q.time_zone if q.time_zone is not None else self.time_zone)
        c = _Compiled(q, f"quota:{q.name}:{q.period}:{time_zone}:q", time_zone)
        if len(self._compiled) >= _CACHE_MAX:
            self._compiled.clear()
        self._compiled[q] = c
        return c
