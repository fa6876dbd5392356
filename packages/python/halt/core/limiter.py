"""RateLimiter: resolves the policy, applies cost, calls the store, counts, emits telemetry, returns a Decision.

Takes a string key, or a RequestView (halt.http): then exemptions, client address, key strategy and cost come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import math
import sys
import time
import weakref
from math import ceil as _ceil
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Hashable, Optional, Sequence, TypeVar, Union, cast

from halt.core.errors import HaltConfigError, RateLimitExceeded
from halt.core.failover import Circuit, StoreTimeoutError, validate_failover
from halt.core.policy import PolicyLike, Rule
from halt.core.sets import combine, compile_set, compile_shadowed
from halt.core.store import AnyStore, AsyncSetStore, AsyncStore, SetStore, Store
from halt.core.types import Decision, Outcome, Policy
from halt.http.rules import ANONYMOUS_KEY, UNKNOWN_IP_KEY, HttpRules
from halt.http.warnings import WarningCode
from halt.stores.memory import InMemoryStore
from halt.telemetry.hub import TelemetryHub, request_id_of
from halt.telemetry.types import DecisionEvent, StoreErrorEvent, TelemetryOption

if TYPE_CHECKING:
    from halt.core.penalty import PenaltyManager

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Milliseconds since the Unix epoch. Inject a fake one in tests.
Clock = Callable[[], float]
#: Chooses the policy of a request (e.g. by plan), or a limit set (a list of policies). None, a raise or an invalid
#: policy give ``default_policy``.
PolicyResolver = Callable[[Any], Union[PolicyLike, Sequence[PolicyLike], None]]
#: The cost of a request. A raise, NaN or a negative value falls back to the policy's cost.
CostResolver = Callable[[Any], float]

_CACHE_MAX = 1000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _perf_ms() -> float:
    """A monotonic clock in milliseconds, for the checks' durations."""
    return time.perf_counter() * 1000


class KeyExplanation:
    """What ``limiter.debug_key(request)`` reports: the key a request maps to, and why."""

    __slots__ = ("client_ip", "cost", "exempt", "key", "policy", "steps", "strategy")

    def __init__(
        self,
        key: Optional[str],
        exempt: Optional[str],
        client_ip: Optional[str],
        strategy: str,
        policy: str,
        cost: float,
        steps: list[str],
    ) -> None:
        #: The storage identity; None when the request is exempt.
        self.key = key
        #: Why the request is exempt, if it is.
        self.exempt = exempt
        #: The client address as resolved (trusted proxies applied), if known.
        self.client_ip = client_ip
        self.strategy = strategy
        #: Name of the policy the request falls under.
        self.policy = policy
        self.cost = cost
        #: Each step of the resolution, in words.
        self.steps = steps

    def __repr__(self) -> str:
        return "KeyExplanation(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__) + ")"


class LimiterStats:
    """Counts since creation (or ``clear()``); ``active_keys`` from the store, -1 when it cannot tell."""

    __slots__ = ("active_keys", "allowed", "blocked", "shadow_blocked", "total_checks")

    def __init__(self, allowed: int, blocked: int, active_keys: int, shadow_blocked: int = 0) -> None:
        self.allowed = allowed
        self.blocked = blocked
        self.total_checks = allowed + blocked
        self.active_keys = active_keys
        #: Decisions of shadow policies that would have rejected (each shadow policy counts on its own).
        self.shadow_blocked = shadow_blocked

    def __repr__(self) -> str:
        return (
            f"LimiterStats(allowed={self.allowed}, blocked={self.blocked}, total_checks={self.total_checks}, "
            f"active_keys={self.active_keys}, shadow_blocked={self.shadow_blocked})"
        )


class _Resolved:
    __slots__ = ("client_ip", "cost", "exempt", "key", "rule", "strategy")

    def __init__(
        self, rule: Rule, key: str, cost: float, exempt: Optional[str], client_ip: Optional[str], strategy: str
    ) -> None:
        self.rule = rule
        self.key = key
        self.cost = cost
        self.exempt = exempt
        self.client_ip = client_ip
        self.strategy = strategy


class _Counter:
    """A counter that threads can bump without a lock (``next()`` on itertools.count is atomic)."""

    __slots__ = ("_c", "bump")

    def __init__(self) -> None:
        self._c = itertools.count()
        self.bump = functools.partial(next, self._c)

    @property
    def value(self) -> int:
        return int(repr(self._c)[6:-1])

    def zero(self) -> None:
        self._c = itertools.count()
        self.bump = functools.partial(next, self._c)


class RateLimiter:
    """A rate limiter: one policy (or a policy per request) over one store.

    Example::

        limiter = RateLimiter(policy=Policy(name="api", limit=100, window=60))
        d = limiter.check("user:42")  # in-memory store: a Decision
        if not d.allowed:
            print(f"retry in {d.retry_after}s")

    With an asyncio store (``AsyncRedisStore``) use the ``a``-methods: ``await limiter.acheck(key)``.
    """

    def __init__(
        self,
        policy: Union[PolicyLike, Sequence[PolicyLike], PolicyResolver, None] = None,
        *,
        store: Optional[AnyStore] = None,
        default_policy: Optional[PolicyLike] = None,
        mode: Optional[str] = None,
        cost: Union[float, CostResolver, None] = None,
        clock: Optional[Clock] = None,
        telemetry: Optional[TelemetryOption] = None,
        near_limit: Optional[float] = None,
        timeout: Optional[float] = None,
        on_store_error: Optional[str] = None,
        retry_store_after: Optional[float] = None,
        trusted_proxies: Optional[Any] = None,
        proxy_header: Optional[str] = None,
        exempt_private_ips: Optional[bool] = None,
        exempt_health_checks: Optional[bool] = None,
        exemptions: Optional[Any] = None,
        skip: Optional[Callable[[Any], bool]] = None,
        key_extractor: Optional[Callable[[Any], Any]] = None,
        user_id: Optional[Callable[[Any], Any]] = None,
        ipv6_prefix: Optional[int] = None,
        on_missing_identity: Optional[str] = None,
        api_key_secret: Union[str, bytes, None] = None,
        on_warning: Optional[Callable[[Any], None]] = None,
        validations: Union[bool, dict[str, bool], None] = None,
        penalties: Optional[PenaltyManager] = None,
    ) -> None:
        """``timeout`` and ``retry_store_after`` are milliseconds, as in the TypeScript SDK. ``timeout`` bounds
        each call of an asyncio store; a synchronous remote store is bounded by its client's socket timeout.
        ``telemetry``: one sink or a list of them (see halt.telemetry); ``near_limit``: the fraction of a policy's
        capacity at which ``on_near_limit`` fires (default 0.8).

        ``penalties`` (a PenaltyManager): every blocked request records a violation (severity 1) for its key, and
        while a key's penalty runs its limit and burst are scaled by the manager's ``multiplier`` (rejections then
        say ``reason='penalty'``). A synchronous limiter needs a synchronous penalty store, and one enforced policy
        (penalties with a limit set are refused).

        A list of policies is a limit set: a request passes only if every (enforced) policy admits it, and then
        consumes from each; if one rejects, none consumes (docs/sets.md). ``mode='shadow'`` makes every policy
        shadow (evaluated and reported, never rejecting)."""
        if policy is None:
            raise HaltConfigError(
                "HALT_MISSING_POLICY", "RateLimiter: policy is required. Fix: RateLimiter(policy=presets.PUBLIC_API)."
            )
        if mode not in (None, "enforce", "shadow"):
            raise HaltConfigError(
                "HALT_INVALID_MODE", f"RateLimiter: mode must be 'enforce' or 'shadow', got {mode!r}."
            )
        self._shadow_mode = mode == "shadow"
        self._resolver: Optional[PolicyResolver] = None
        rules: Optional[list[Rule]] = None
        if isinstance(policy, (list, tuple)):
            if default_policy is not None:
                raise HaltConfigError(
                    "HALT_INVALID_OPTIONS",
                    "RateLimiter: default_policy only applies when policy is a function of the request. "
                    "Fix: remove default_policy.",
                )
            rules = compile_set(policy, self._shadow_mode)
            self.rule = next((r for r in rules if not r.shadow), rules[0])
        elif callable(policy) and not isinstance(policy, Policy):
            if default_policy is None:
                raise HaltConfigError(
                    "HALT_MISSING_DEFAULT_POLICY",
                    "RateLimiter: a policy function needs default_policy, used for string keys and when the function "
                    "returns no policy, raises, or returns an invalid one. Fix: default_policy=presets.PLAN_FREE.",
                )
            self._resolver = policy
            self.rule = compile_shadowed(default_policy, self._shadow_mode)
        else:
            if default_policy is not None:
                raise HaltConfigError(
                    "HALT_INVALID_OPTIONS",
                    "RateLimiter: default_policy only applies when policy is a function of the request. "
                    "Fix: remove default_policy.",
                )
            self.rule = compile_shadowed(policy, self._shadow_mode)
        if rules is None and self.rule.shadow:
            rules = [self.rule]
        if rules is not None and len(rules) == 1 and not rules[0].shadow:
            rules = None
        #: Several policies, or shadow ones: every check goes through ``store.consume_set``.
        self._set = rules
        #: The set's key strategy (the one its policies name, if any).
        self._set_strategy = next((r.policy.key_strategy for r in rules or () if r.policy.key_strategy), None)
        #: Sets a resolver returned, by their first enforced rule (what a resolved request carries), and strategy.
        self._sets_by_head: weakref.WeakKeyDictionary[Rule, tuple[list[Rule], Optional[str]]] = (
            weakref.WeakKeyDictionary()
        )
        #: Every rule in use, by storage namespace: reset, clear and stats cover them all.
        self._rules: dict[str, Rule] = {r.ns: r for r in rules or [self.rule]}
        self._overrides: dict[str, Rule] = {}
        self._resolved: dict[Hashable, Rule] = {}
        if store is None:
            store = InMemoryStore()
        if not all(callable(getattr(store, m, None)) for m in ("consume", "peek", "reset", "clear")):
            raise HaltConfigError(
                "HALT_INVALID_STORE",
                "RateLimiter: store must implement consume/peek/reset/clear (e.g. InMemoryStore()).",
            )
        if rules is not None and not callable(getattr(store, "consume_set", None)):
            raise HaltConfigError(
                "HALT_STORE_NO_SETS",
                "RateLimiter: several policies (or shadow ones) need a store with consume_set(); this store has "
                "none. Fix: use a Halt store (memory, Redis) or one limiter per policy.",
            )
        self.store = store
        self._sync = bool(getattr(store, "synchronous", True))
        shared = bool(getattr(store, "shared", not self._sync))
        # The in-memory store cannot fail: its calls skip the failure policy.
        self._local = self._sync and not shared
        given = {
            "trusted_proxies": trusted_proxies,
            "proxy_header": proxy_header,
            "exempt_private_ips": exempt_private_ips,
            "exempt_health_checks": exempt_health_checks,
            "exemptions": exemptions,
            "skip": skip,
            "key_extractor": key_extractor,
            "user_id": user_id,
            "ipv6_prefix": ipv6_prefix,
            "on_missing_identity": on_missing_identity,
            "api_key_secret": api_key_secret,
            "on_warning": on_warning,
            "validations": validations,
        }
        #: The compiled HTTP options: client address, exemptions, keys.
        self.http = HttpRules({k: v for k, v in given.items() if v is not None}, shared)
        self.http.validate_strategy(self.rule.name, self._set_strategy or self.rule.policy.key_strategy)
        self._cost_fn: Optional[CostResolver] = None
        self._cost_number: Optional[float] = None
        if callable(cost):
            self._cost_fn = cost
        elif cost is not None:
            if not _valid_cost(cost):
                raise HaltConfigError(
                    "HALT_INVALID_COST",
                    f"RateLimiter: cost must be a finite number >= 0 or a function of the request, got {cost!r}. "
                    "Fix: cost=1.",
                )
            for r in rules or [self.rule]:
                if cost > r.capacity:
                    raise HaltConfigError(
                        "HALT_COST_EXCEEDS_CAPACITY",
                        f"RateLimiter: cost {cost} is above the capacity {r.capacity} of policy "
                        f"'{r.name}', so no request could ever pass. Fix: lower cost or raise the policy's "
                        "burst/limit.",
                    )
            self._cost_number = cost
        if clock is not None and not callable(clock):
            raise HaltConfigError(
                "HALT_INVALID_CLOCK",
                "RateLimiter: clock must be a function returning epoch milliseconds, like lambda: time.time() * 1000.",
            )
        self._clock: Clock = clock if clock is not None else _now_ms
        self.telemetry = telemetry
        self._near_fraction = 0.8 if near_limit is None else near_limit
        if not _valid_cost(self._near_fraction) or not 0 < self._near_fraction <= 1:
            raise HaltConfigError(
                "HALT_INVALID_NEAR_LIMIT",
                "RateLimiter: near_limit must be a fraction of the limit above 0 and at most 1, "
                f"got {near_limit!r}. Fix: near_limit=0.8.",
            )
        #: Where decisions and store errors are reported; None without telemetry.
        self._telemetry = None if telemetry is None else TelemetryHub(telemetry, self.http.warnings.warn)
        self._timeout, self._on_store_error, self._retry_store_after = validate_failover(
            timeout, on_store_error, retry_store_after
        )
        self._circuit = Circuit(self._retry_store_after)
        self._fallback: Optional[InMemoryStore] = None
        self._allowed = _Counter()
        self._blocked = _Counter()
        self._shadow_blocked = _Counter()
        #: Penalties (halt.core.penalty): blocked requests record violations; a penalised key gets a scaled rule.
        self._penalties = check_penalties(penalties, self._sync)
        if self._penalties is not None and rules is not None:
            raise HaltConfigError(
                "HALT_INVALID_OPTIONS",
                "RateLimiter: penalties apply to a limiter with one enforced policy, not to several or shadow ones. "
                "Fix: put the penalties on a limiter of their own.",
            )
        self._fast = self._local and rules is None and self._penalties is None
        self._consume: Callable[[str, str, Rule, float, float], Outcome] = cast(Store, store).consume

    # ---- public API -------------------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy as given (with a policy function: the default policy; with several: the first enforced)."""
        return self.rule.policy

    @property
    def policies(self) -> list[Policy]:
        """Every policy this limiter decides with, in order (one, unless it was given several)."""
        return [r.policy for r in self._set or [self.rule]]

    @property
    def store_down(self) -> bool:
        """True while the store is considered down (calls take the failure policy)."""
        return self._circuit.is_open

    def check(self, key: Any, cost: Optional[float] = None, algorithm: Optional[str] = None) -> Decision:
        """Take ``cost`` units for ``key`` and decide.

        Given a RequestView instead of a key, the request is first checked against ``skip``, the path and
        address exemptions (an exempt request gets ``reason='exempt'`` and never reaches the store), then its
        policy, key and cost are resolved. Nothing about the request can make this raise.

        Example::

            limiter.check("user:42", cost=5)
        """
        if self._fast and type(key) is str and algorithm is None:
            # The hot path (in-memory store, string key): the same steps as below, without the branches.
            rule = self.rule
            c = rule.cost if cost is None else _checked_cost(cost)
            t = self._telemetry
            t0 = 0.0 if t is None else _perf_ms()
            o = self._consume(rule.ns, key, rule, self._clock(), c)
            d = Decision(
                o.allowed,
                rule.limit,
                o.remaining,
                _ceil(o.reset_at_ms / 1000),
                _ceil(o.retry_after_ms / 1000),
                rule.name,
                o.reason,
                o.delay_ms / 1000,
            )
            (self._allowed if o.allowed else self._blocked).bump()
            if t is not None:
                self._report(key, c, rule, d, t0, None, None)
            return d
        if not self._sync:
            self._async_only("check")
        if not isinstance(key, str):
            return self._check_request(key, cost, algorithm, "check")
        if self._set is not None:
            costs = self._costs_of(self._set, None if cost is None else _checked_cost(cost), algorithm)
            return self._set_sync(key, self._set, self._clock(), costs, "check", None)
        rule = self.rule if algorithm is None else self._override(algorithm)
        c = rule.cost if cost is None else _checked_cost(cost)
        now = self._clock()
        if self._penalties is not None:
            return self._penalised(key, rule, now, c, "check", None)
        if self._local:
            t0 = 0.0 if self._telemetry is None else _perf_ms()
            return self._finish(key, c, rule, cast(Store, self.store).consume(rule.ns, key, rule, now, c), t0)
        return self._remote_sync(key, rule, now, c, "check", None)

    async def acheck(self, key: Any, cost: Optional[float] = None, algorithm: Optional[str] = None) -> Decision:
        """``check()`` for async code: awaits an asyncio store; never blocks the event loop (a synchronous
        remote store is called in a worker thread; the in-memory store answers directly)."""
        if self._sync:
            if self._local:
                return self.check(key, cost, algorithm)
            return await _to_thread(self.check, key, cost, algorithm)
        if not isinstance(key, str):
            return await self._acheck_request(key, cost, algorithm, "check")
        if self._set is not None:
            costs = self._costs_of(self._set, None if cost is None else _checked_cost(cost), algorithm)
            return await self._set_async(key, self._set, self._clock(), costs, "check", None)
        rule = self.rule if algorithm is None else self._override(algorithm)
        c = rule.cost if cost is None else _checked_cost(cost)
        if self._penalties is not None:
            return await self._apenalised(key, rule, self._clock(), c, "check", None)
        return await self._remote_async(key, rule, self._clock(), c, "check", None)

    def allow(self, key: Any, cost: Optional[float] = None, algorithm: Optional[str] = None) -> bool:
        """``check()`` reduced to a boolean."""
        return self.check(key, cost, algorithm).allowed

    async def aallow(self, key: Any, cost: Optional[float] = None, algorithm: Optional[str] = None) -> bool:
        return (await self.acheck(key, cost, algorithm)).allowed

    def peek(self, key: Any, algorithm: Optional[str] = None) -> Decision:
        """What ``check()`` would say for a request of cost 0, without consuming anything."""
        if not self._sync:
            self._async_only("peek")
        if not isinstance(key, str):
            return self._check_request(key, None, algorithm, "peek")
        if self._set is not None:
            return self._set_sync(key, self._set, self._clock(), self._costs_of(self._set, 0, algorithm), "peek", None)
        rule = self.rule if algorithm is None else self._override(algorithm)
        now = self._clock()
        if self._penalties is not None:
            return self._penalised(key, rule, now, 0, "peek", None)
        if self._local:
            return to_decision(rule, cast(Store, self.store).peek(rule.ns, key, rule, now))
        return self._remote_sync(key, rule, now, 0, "peek", None)

    async def apeek(self, key: Any, algorithm: Optional[str] = None) -> Decision:
        if self._sync:
            return self.peek(key, algorithm) if self._local else await _to_thread(self.peek, key, algorithm)
        if not isinstance(key, str):
            return await self._acheck_request(key, None, algorithm, "peek")
        if self._set is not None:
            costs = self._costs_of(self._set, 0, algorithm)
            return await self._set_async(key, self._set, self._clock(), costs, "peek", None)
        rule = self.rule if algorithm is None else self._override(algorithm)
        if self._penalties is not None:
            return await self._apenalised(key, rule, self._clock(), 0, "peek", None)
        return await self._remote_async(key, rule, self._clock(), 0, "peek", None)

    def reset(self, key: Any) -> None:
        """Forget ``key``'s state under this policy (every algorithm and resolved policy used with it).

        Given a request, forgets the key that request maps to (e.g. after a successful login).
        """
        if not self._sync:
            self._async_only("reset")
        ident = self._reset_key(key)
        if ident is None:
            return
        store = cast(Store, self.store)
        for r in list(self._rules.values()):
            store.reset(r.ns, ident)

    async def areset(self, key: Any) -> None:
        if self._sync:
            self.reset(key) if self._local else await _to_thread(self.reset, key)
            return
        ident = self._reset_key(key)
        if ident is None:
            return
        store = cast(AsyncStore, self.store)
        await asyncio.gather(*(store.reset(r.ns, ident) for r in list(self._rules.values())))

    def clear(self) -> None:
        """Forget every key of this policy, and zero the stats."""
        if not self._sync:
            self._async_only("clear")
        self._zero()
        store = cast(Store, self.store)
        for r in list(self._rules.values()):
            store.clear(r.ns)

    async def aclear(self) -> None:
        if self._sync:
            self.clear() if self._local else await _to_thread(self.clear)
            return
        self._zero()
        store = cast(AsyncStore, self.store)
        await asyncio.gather(*(store.clear(r.ns) for r in list(self._rules.values())))

    def stats(self) -> LimiterStats:
        """Counts since creation (or ``clear()``); ``active_keys`` over every policy in use, -1 when unknown."""
        size = getattr(self.store, "size", None)
        active = -1
        if size is not None and self._sync:
            active = sum(size(r.ns) for r in list(self._rules.values()))
        return LimiterStats(self._allowed.value, self._blocked.value, active, self._shadow_blocked.value)

    async def astats(self) -> LimiterStats:
        size = getattr(self.store, "size", None)
        if self._sync or size is None:
            return self.stats()
        sizes = await asyncio.gather(*(size(r.ns) for r in list(self._rules.values())))
        return LimiterStats(self._allowed.value, self._blocked.value, sum(sizes), self._shadow_blocked.value)

    def cleanup_expired(self) -> int:
        """Delete the store's expired keys now (the in-memory store also does it periodically). Returns how many
        were removed; 0 for stores that expire keys themselves (Redis)."""
        fn = getattr(self.store, "cleanup_expired", None)
        return int(fn()) if fn is not None else 0

    def limit(
        self, key: Union[str, Callable[..., str]], *, cost: Optional[float] = None, algorithm: Optional[str] = None
    ) -> Callable[[F], F]:
        """Decorate a function so each call is checked first; over the limit it raises RateLimitExceeded.

        ``key`` is fixed, or a function of the call's arguments. Coroutine functions get an async wrapper.

        Example::

            @limiter.limit("login")
            def login(user, password): ...

            @limiter.limit(lambda user_id: f"user:{user_id}")
            async def send(user_id): ...
        """
        key_of = _key_function(key)
        if cost is not None:
            _checked_cost(cost)

        def decorate(fn: F) -> F:
            if not callable(fn):
                raise HaltConfigError(
                    "HALT_INVALID_WRAP", "@limiter.limit(key): the decorated object must be callable."
                )
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def awrapper(*args: Any, **kwargs: Any) -> Any:
                    d = await self.acheck(key_of(*args, **kwargs), cost, algorithm)
                    if not d.allowed:
                        raise RateLimitExceeded(d)
                    return await fn(*args, **kwargs)

                return cast(F, awrapper)

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                d = self.check(key_of(*args, **kwargs), cost, algorithm)
                if not d.allowed:
                    raise RateLimitExceeded(d)
                return fn(*args, **kwargs)

            return cast(F, wrapper)

        return decorate

    def wrap(
        self,
        fn: Callable[..., T],
        key: Union[str, Callable[..., str]],
        cost: Optional[float] = None,
        algorithm: Optional[str] = None,
    ) -> Callable[..., T]:
        """``limiter.limit(key)(fn)``, as in the TypeScript SDK's ``wrap``."""
        if not callable(fn):
            raise HaltConfigError("HALT_INVALID_WRAP", "limiter.wrap(fn, key): fn must be a function.")
        return self.limit(key, cost=cost, algorithm=algorithm)(fn)

    def debug_key(self, req: Any) -> KeyExplanation:
        """Which key a request maps to, and why: client address (trusted proxies applied), exemptions, policy,
        strategy and cost, step by step. Consumes nothing."""
        steps: list[str] = []
        r = self._resolve(req, None, steps)
        return KeyExplanation(
            r.key if r.exempt is None else None, r.exempt, r.client_ip, r.strategy, r.rule.name, r.cost, steps
        )

    def write_headers(self, d: Decision, format: str, target: T, set_header: Callable[[T, str, str], None]) -> None:
        """Write the rate-limit headers of ``d`` (a decision of this limiter) with ``set_header``."""
        from halt.http.headers import write_rate_limit_headers

        if format == "ietf":
            window: Union[float, Callable[[str], float]] = (
                self._rule_named(d.policy).window_ms / 1000 if d.policies is None else self._window_of
            )
            write_rate_limit_headers(d, format, target, set_header, window, self._clock())  # type: ignore[arg-type]
        else:
            write_rate_limit_headers(d, format, target, set_header)  # type: ignore[arg-type]

    def has_policy(self, name: str) -> bool:
        """Whether a policy of this name is in use here (the default one, an override, or a resolved one)."""
        return self.rule.name == name or any(r.name == name for r in list(self._rules.values()))

    # ---- request path -----------------------------------------------------------------------------------

    def _check_request(self, req: Any, cost: Optional[float], algorithm: Optional[str], op: str) -> Decision:
        r = self._resolve(req, cost, None)
        if r.exempt is not None:
            d = exempt_decision(r.rule)
            if op == "check" and self._telemetry is not None:
                self._telemetry.decision(DecisionEvent(r.key, 0, d, request_id=request_id_of(req)))
            return d
        rules = self._set_of(r.rule)
        if rules is not None:
            costs = self._request_costs(rules, r, cost, algorithm, op)
            return self._set_sync(r.key, rules, self._clock(), costs, op, req)
        rule = r.rule if algorithm is None else self._override_of(r.rule, algorithm)
        now = self._clock()
        if self._penalties is not None:
            return self._penalised(r.key, rule, now, 0 if op == "peek" else r.cost, op, req)
        if self._local:
            store = cast(Store, self.store)
            if op == "peek":
                return to_decision(rule, store.peek(rule.ns, r.key, rule, now))
            t0 = 0.0 if self._telemetry is None else _perf_ms()
            return self._finish(r.key, r.cost, rule, store.consume(rule.ns, r.key, rule, now, r.cost), t0, None, req)
        return self._remote_sync(r.key, rule, now, 0 if op == "peek" else r.cost, op, req)

    async def _acheck_request(self, req: Any, cost: Optional[float], algorithm: Optional[str], op: str) -> Decision:
        r = self._resolve(req, cost, None)
        if r.exempt is not None:
            d = exempt_decision(r.rule)
            if op == "check" and self._telemetry is not None:
                self._telemetry.decision(DecisionEvent(r.key, 0, d, request_id=request_id_of(req)))
            return d
        rules = self._set_of(r.rule)
        if rules is not None:
            costs = self._request_costs(rules, r, cost, algorithm, op)
            return await self._set_async(r.key, rules, self._clock(), costs, op, req)
        rule = r.rule if algorithm is None else self._override_of(r.rule, algorithm)
        if self._penalties is not None:
            return await self._apenalised(r.key, rule, self._clock(), 0 if op == "peek" else r.cost, op, req)
        return await self._remote_async(r.key, rule, self._clock(), 0 if op == "peek" else r.cost, op, req)

    def _resolve(self, req: Any, cost: Optional[float], trace: Optional[list[str]]) -> _Resolved:
        """Skip, client address, exemptions, policy, key, cost: everything a request check needs, never raising."""
        http = self.http
        if http.skip is not None and http.skipped(req):
            if trace is not None:
                trace.append("skip(req) returned true: exempt")
            return _Resolved(self.rule, "", 0, "skip", None, http.strategy_of(self.rule.policy.key_strategy))
        client = http.client(req, trace)
        client_key = client.key if client is not None else ""
        client_ip = client.ip if client is not None else None
        exempt: Optional[str] = None
        if http.paths.size > 0 and http.paths.matches(getattr(req, "path", None)):
            if trace is not None:
                trace.append(f"path {str(getattr(req, 'path', ''))[:200]} is exempt")
            exempt = "path"
        else:
            exempt = http.ip_exemption(client)
            if exempt is not None and trace is not None:
                why = "private or loopback address" if exempt == "private_ip" else "listed in exemptions"
                trace.append(f"client {client_ip} is exempt ({why})")
        if exempt is not None:
            strategy = http.strategy_of(self.rule.policy.key_strategy)
            return _Resolved(self.rule, client_key, 0, exempt, client_ip, strategy)
        rule = self.rule if self._resolver is None else self._rule_for(req, trace)
        strategy = http.strategy_of(self._strategy_of(rule))
        if strategy == "ip":
            key: Optional[str] = client.key if client is not None else UNKNOWN_IP_KEY
        else:
            key = http.key(strategy, req, client, trace)
        if key is None:
            missing = http.on_missing
            if missing == "allow":
                if trace is not None:
                    trace.append(f"strategy '{strategy}' found no identity and on_missing_identity is 'allow': exempt")
                return _Resolved(rule, client_key, 0, "no_identity", client_ip, strategy)
            key = ANONYMOUS_KEY if missing == "shared" else (client.key if client is not None else UNKNOWN_IP_KEY)
            if trace is not None:
                trace.append(f"strategy '{strategy}' found no identity: on_missing_identity '{missing}' gives {key}")
        if trace is not None:
            trace.append(f"key {key} under policy '{rule.name}'")
        return _Resolved(rule, key, self._cost_of(req, rule, cost), None, client_ip, strategy)

    def _rule_for(self, req: Any, trace: Optional[list[str]]) -> Rule:
        """The policy a resolver picks for ``req``, compiled once per distinct policy. Never raises."""
        resolver = cast(PolicyResolver, self._resolver)
        try:
            p = resolver(req)
        except Exception as e:
            self._resolver_failed(f"raised ({e})")
            if trace is not None:
                trace.append("the policy function raised: default policy")
            return self.rule
        if p is None:
            if trace is not None:
                trace.append("the policy function returned no policy: default policy")
            return self.rule
        try:
            cache_key: Hashable = (
                ("set", tuple(_policy_key(x) for x in p)) if isinstance(p, (list, tuple)) else _policy_key(p)
            )
            hash(cache_key)
        except Exception:
            cache_key = None
        if cache_key is not None:
            hit = self._resolved.get(cache_key)
            if hit is not None:
                return hit
        if isinstance(p, (list, tuple)):
            rule = self._compile_resolved_set(p)
        else:
            rule = self._compile_resolved(p)
        if cache_key is not None:
            if len(self._resolved) >= _CACHE_MAX:
                self._resolved.clear()
            self._resolved[cache_key] = rule
        return rule

    def _compile_resolved(self, p: Any) -> Rule:
        """A policy a resolver returned, compiled: its rule, or the default rule when it is invalid."""
        try:
            rule = compile_shadowed(p, self._shadow_mode)
            if rule.shadow and not callable(getattr(self.store, "consume_set", None)):
                raise ValueError(f"policy '{rule.name}' is shadow but the store has no consume_set()")
            if self.http.strategy_of(rule.policy.key_strategy) == "custom" and self.http.key_extractor is None:
                raise ValueError(f"policy '{rule.name}' uses key_strategy 'custom' but no key_extractor is set")
            known = self._rules.get(rule.ns)
            if known is not None and known.policy == rule.policy:
                rule = known
            else:
                self._rules[rule.ns] = rule
        except Exception as e:
            self._resolver_failed(f"returned an invalid policy ({e})")
            rule = self.rule
        return rule

    def _resolver_failed(self, what: str) -> None:
        self.http.warnings.warn(
            WarningCode.POLICY_RESOLVER_FAILED,
            f"the policy function {what}; the request was checked under the default policy '{self.rule.name}'. "
            "This is reported once.",
        )

    def _cost_of(self, req: Any, rule: Rule, cost: Optional[float]) -> float:
        """Explicit ``cost`` (validated: a programming error raises), else the cost option, else the policy's."""
        if cost is not None:
            return _checked_cost(cost)
        if self._cost_fn is None:
            return rule.cost if self._cost_number is None else self._cost_number
        try:
            c: Any = self._cost_fn(req)
        except Exception as e:
            c = e
        if _valid_cost(c):
            return cast(float, c)
        what = f"raised ({c})" if isinstance(c, Exception) else f"returned {c!r}"
        self.http.warnings.warn(
            WarningCode.INVALID_REQUEST_COST,
            f"the cost function {what}, not a finite number >= 0; the policy's cost ({rule.cost}) was used. "
            "This is reported once.",
        )
        return rule.cost

    def identify(self, req: Any) -> Optional[str]:
        """The key a request is limited by, or None when it is exempt. Consumes nothing (the HTTP ``quota``
        option uses it)."""
        return self._reset_key(req)

    def _reset_key(self, key: Any) -> Optional[str]:
        if isinstance(key, str):
            return key
        r = self._resolve(key, None, None)
        return None if r.exempt is not None else r.key

    # ---- penalties --------------------------------------------------------------------------------------

    def _penalised(self, key: str, rule: Rule, now: float, cost: float, op: str, request: Any) -> Decision:
        """A check (or peek) under penalties: read the key's penalty, decide under the scaled rule while it runs,
        and record a violation when a check is blocked. A failing penalty store never fails the request: the
        penalty is skipped."""
        pm = cast("PenaltyManager", self._penalties)
        t0 = 0.0 if self._telemetry is None else _perf_ms()  # the penalty read is part of the check's time
        try:
            active = pm.get_penalty(key, now).is_active(now)
        except Exception:
            active = False
        r = pm.penalised(rule) if active else rule
        if not self._local:
            d = self._remote_sync(key, r, now, cost, op, request)
        elif op == "check":
            d = self._finish(key, cost, r, cast(Store, self.store).consume(r.ns, key, r, now, cost), t0, None, request)
        else:
            d = to_decision(r, cast(Store, self.store).peek(r.ns, key, r, now))
        if _violation(d, op, active):
            with contextlib.suppress(Exception):
                pm.record_violation(key, 1, now)
        return d

    async def _apenalised(self, key: str, rule: Rule, now: float, cost: float, op: str, request: Any) -> Decision:
        """``_penalised`` over an asyncio store (the penalty store may be either kind)."""
        pm = cast("PenaltyManager", self._penalties)
        try:
            active = (await pm.aget_penalty(key, now)).is_active(now)
        except Exception:
            active = False
        r = pm.penalised(rule) if active else rule
        d = await self._remote_async(key, r, now, cost, op, request)
        if _violation(d, op, active):
            with contextlib.suppress(Exception):
                await pm.arecord_violation(key, 1, now)
        return d

    # ---- store calls ------------------------------------------------------------------------------------

    def _finish(
        self,
        key: str,
        cost: float,
        rule: Rule,
        o: Outcome,
        t0: float,
        store_error: Optional[str] = None,
        request: Any = None,
    ) -> Decision:
        """Count a decision and tell telemetry. ``t0``: ``_perf_ms()`` before the store call."""
        d = Decision(
            o.allowed,
            rule.limit,
            o.remaining,
            math.ceil(o.reset_at_ms / 1000),
            math.ceil(o.retry_after_ms / 1000),
            rule.name,
            o.reason,
            o.delay_ms / 1000,
        )
        if o.reason == "limit" and self._penalties is not None and self._penalties.is_penalised_rule(rule):
            d.reason = "penalty"
        return self._record(key, cost, rule, d, t0, store_error, request)

    def _record(
        self,
        key: str,
        cost: float,
        rule: Optional[Rule],
        d: Decision,
        t0: float,
        store_error: Optional[str],
        request: Any,
    ) -> Decision:
        """Count a decision and report it (``rule``: see ``_report``)."""
        if d.allowed:
            self._allowed.bump()
        else:
            self._blocked.bump()
        if self._telemetry is not None:
            self._report(key, cost, rule, d, t0, store_error, request)
        return d

    def _report(
        self,
        key: str,
        cost: float,
        rule: Optional[Rule],
        d: Decision,
        t0: float,
        store_error: Optional[str],
        request: Any,
    ) -> None:
        """The decision to telemetry, then (unless ``rule`` is None: a set's overall decision, whose policies
        signal on their own) the near-limit signal for ``rule``, with one request id for both."""
        t = cast(TelemetryHub, self._telemetry)
        rid = None if request is None else request_id_of(request)
        t.decision(DecisionEvent(key, cost, d, store_error, False, rid, _perf_ms() - t0))
        if rule is not None:
            self._near_limit(key, cost, rule, d, rid)

    def _near_limit(self, key: str, cost: float, rule: Rule, d: Decision, rid: Optional[str]) -> None:
        """Fire ``on_near_limit`` when this admission took ``rule`` from below the ``near_limit`` fraction of its
        capacity to it or beyond (a shadow policy's event says ``shadow=True``)."""
        t = cast(TelemetryHub, self._telemetry)
        if not t.has_near_limit or not d.allowed or cost <= 0 or d.reason is not None:
            return
        threshold = rule.capacity * self._near_fraction
        used = rule.capacity - d.remaining
        if used + 1e-9 < threshold or used - cost >= threshold:
            return
        t.near_limit(DecisionEvent(key, cost, d, None, rule.shadow, rid))

    def _store_failed(self, error: BaseException, key: str, rule: Rule, op: str) -> None:
        self._circuit.failure(self._clock())
        if self._telemetry is not None:
            self._telemetry.error(StoreErrorEvent(error, key, rule.name, op, self._on_store_error))

    def _remote_sync(self, key: str, rule: Rule, now: float, cost: float, op: str, request: Any) -> Decision:
        """A call to a synchronous remote store, under the circuit breaker and the failure policy."""
        t0 = 0.0 if self._telemetry is None else _perf_ms()
        if self._circuit.allows(now):
            store = cast(Store, self.store)
            try:
                o = (
                    store.consume(rule.ns, key, rule, now, cost)
                    if op == "check"
                    else store.peek(rule.ns, key, rule, now)
                )
            except Exception as error:
                self._store_failed(error, key, rule, op)
            else:
                self._circuit.success()
                return self._finish(key, cost, rule, o, t0, None, request) if op == "check" else to_decision(rule, o)
        return self._degraded(key, rule, now, cost, op, t0, request)

    async def _remote_async(self, key: str, rule: Rule, now: float, cost: float, op: str, request: Any) -> Decision:
        """A call to an asyncio store, under the timeout, the circuit breaker and the failure policy."""
        t0 = 0.0 if self._telemetry is None else _perf_ms()
        if self._circuit.allows(now):
            store = cast(AsyncStore, self.store)
            try:
                call = (
                    store.consume(rule.ns, key, rule, now, cost)
                    if op == "check"
                    else store.peek(rule.ns, key, rule, now)
                )
                o = await _with_timeout(call, self._timeout)
            except Exception as error:
                self._store_failed(error, key, rule, op)
            else:
                self._circuit.success()
                return self._finish(key, cost, rule, o, t0, None, request) if op == "check" else to_decision(rule, o)
        return self._degraded(key, rule, now, cost, op, t0, request)

    def _fallback_store(self) -> InMemoryStore:
        """The in-memory store that decides while the store is down (``on_store_error='fallback'``)."""
        if self._fallback is None:
            self._fallback = InMemoryStore(sweep_interval=0)
        return self._fallback

    def _degraded(self, key: str, rule: Rule, now: float, cost: float, op: str, t0: float, request: Any) -> Decision:
        """The decision while the store is down, as ``on_store_error`` says."""
        mode = self._on_store_error
        if mode == "fallback":
            fb = self._fallback_store()
            if op == "check":
                return self._finish(key, cost, rule, fb.consume(rule.ns, key, rule, now, cost), t0, mode, request)
            return to_decision(rule, fb.peek(rule.ns, key, rule, now))
        allowed = mode == "open"
        o = Outcome(
            allowed,
            math.floor(rule.capacity) if allowed else 0,
            now + rule.window_ms,
            0 if allowed else max(1000, self._retry_store_after),
            None,
            0,
            now,
        )
        d = to_decision(rule, o)
        d.reason = "store_error"
        return self._record(key, cost, rule, d, t0, mode, request) if op == "check" else d

    # ---- limit sets (docs/sets.md) -------------------------------------------------------------------------

    def _set_of(self, rule: Rule) -> Optional[list[Rule]]:
        """The rules a request under ``rule`` is checked against as a set, or None for a single-policy check."""
        if rule is self.rule:
            return self._set
        known = self._sets_by_head.get(rule)
        if known is not None:
            return known[0]
        return [rule] if rule.shadow else None

    def _strategy_of(self, rule: Rule) -> Optional[str]:
        """The key strategy of a request under ``rule``: its set's, if it heads one."""
        if rule is self.rule and self._set_strategy is not None:
            return self._set_strategy
        known = self._sets_by_head.get(rule)
        return known[1] if known is not None else rule.policy.key_strategy

    def _costs_of(self, rules: Sequence[Rule], given: Optional[float], algorithm: Optional[str]) -> list[float]:
        """Each rule's cost: one given for the request (explicit, or the limiter's cost option), else each
        policy's own. A set has no per-request algorithm: asking for one is a programming error."""
        if algorithm is not None:
            raise HaltConfigError(
                "HALT_INVALID_OPTIONS",
                "check(): the algorithm option does not apply to a limiter with several policies or shadow ones. "
                "Fix: set algorithm on each policy.",
            )
        c = self._cost_number if given is None else given
        return [r.cost if c is None else c for r in rules]

    def _request_costs(
        self, rules: Sequence[Rule], r: _Resolved, cost: Optional[float], algorithm: Optional[str], op: str
    ) -> list[float]:
        if op == "peek":
            return self._costs_of(rules, 0, algorithm)
        uniform = r.cost if cost is not None or self._cost_fn is not None else None
        return self._costs_of(rules, uniform, algorithm)

    def _compile_resolved_set(self, policies: Sequence[Any]) -> Rule:
        """A set a resolver returned, compiled: its head rule (first enforced), or the default rule when invalid."""
        try:
            rules = compile_set(policies, self._shadow_mode)
            if not callable(getattr(self.store, "consume_set", None)):
                raise ValueError("several policies need a store with consume_set()")
            if self._penalties is not None:
                raise ValueError("penalties apply to one enforced policy, not to a set")
            strategy = next((r.policy.key_strategy for r in rules if r.policy.key_strategy), None)
            if self.http.strategy_of(strategy) == "custom" and self.http.key_extractor is None:
                raise ValueError("a policy uses key_strategy 'custom' but no key_extractor is set")
            for r in rules:
                self._rules.setdefault(r.ns, r)
            head = next((r for r in rules if not r.shadow), rules[0])
            self._sets_by_head[head] = (rules, strategy)
            return head
        except Exception as e:
            self._resolver_failed(f"returned an invalid set of policies ({e})")
            return self.rule

    def _set_sync(self, key: str, rules: list[Rule], now: float, costs: list[float], op: str, request: Any) -> Decision:
        """A check or peek of a set on a synchronous store (the remote ones under the failure policy)."""
        store = cast(SetStore, self.store)
        t0 = 0.0 if self._telemetry is None else _perf_ms()
        if self._local:
            if op == "peek":
                return combine(rules, [to_decision(r, store.peek(r.ns, key, r, now)) for r in rules])
            return self._finish_set(key, rules, costs, store.consume_set(key, rules, now, costs), t0, None, request)
        if self._circuit.allows(now):
            try:
                if op == "check":
                    outcomes = store.consume_set(key, rules, now, costs)
                else:
                    outcomes = [store.peek(r.ns, key, r, now) for r in rules]
            except Exception as error:
                self._store_failed(error, key, self.rule, op)
            else:
                self._circuit.success()
                return self._set_answer(key, rules, costs, outcomes, t0, op, request)
        return self._set_degraded(key, rules, now, costs, op, t0, request)

    async def _set_async(
        self, key: str, rules: list[Rule], now: float, costs: list[float], op: str, request: Any
    ) -> Decision:
        """A check or peek of a set on an asyncio store, under the timeout and the failure policy."""
        t0 = 0.0 if self._telemetry is None else _perf_ms()
        if self._circuit.allows(now):
            store = cast(AsyncSetStore, self.store)
            try:
                call: Awaitable[list[Outcome]]
                if op == "check":
                    call = store.consume_set(key, rules, now, costs)
                else:
                    call = asyncio.gather(*(store.peek(r.ns, key, r, now) for r in rules))
                outcomes = await _with_timeout(call, self._timeout)
            except Exception as error:
                self._store_failed(error, key, self.rule, op)
            else:
                self._circuit.success()
                return self._set_answer(key, rules, costs, list(outcomes), t0, op, request)
        return self._set_degraded(key, rules, now, costs, op, t0, request)

    def _set_answer(
        self, key: str, rules: list[Rule], costs: list[float], outcomes: list[Outcome], t0: float, op: str, request: Any
    ) -> Decision:
        if op == "check":
            return self._finish_set(key, rules, costs, outcomes, t0, None, request)
        return combine(rules, [to_decision(r, o) for r, o in zip(rules, outcomes)])

    def _set_degraded(
        self, key: str, rules: list[Rule], now: float, costs: list[float], op: str, t0: float, request: Any
    ) -> Decision:
        """A set while the store is down: 'fallback' decides it in memory, atomically (so does a set whose every
        policy is shadow: it never rejects); 'open' and 'closed' answer for the first enforced policy."""
        mode = self._on_store_error
        if mode == "fallback" or all(r.shadow for r in rules):
            fb = self._fallback_store()
            if op == "peek":
                return combine(rules, [to_decision(r, fb.peek(r.ns, key, r, now)) for r in rules])
            outcomes = fb.consume_set(key, rules, now, costs)
            return self._finish_set(key, rules, costs, outcomes, t0, "fallback", request)
        i = next(i for i, r in enumerate(rules) if not r.shadow)
        return self._degraded(key, rules[i], now, costs[i] if op == "check" else 0, op, t0, request)

    def _finish_set(
        self,
        key: str,
        rules: list[Rule],
        costs: list[float],
        outcomes: list[Outcome],
        t0: float,
        store_error: Optional[str],
        request: Any,
    ) -> Decision:
        """Count and report a set's decision: the enforced one (without a near-limit signal of its own), each
        shadow policy's, then one near-limit signal per policy that crossed its threshold."""
        decisions = [to_decision(r, o) for r, o in zip(rules, outcomes)]
        d = combine(rules, decisions)
        t = self._telemetry
        if d.shadow:
            self._allowed.bump()
        elif t is not None:
            cost = next(c for r, c in zip(rules, costs) if r.name == d.policy)
            self._record(key, cost, None, d, t0, store_error, request)
        else:
            (self._allowed if d.allowed else self._blocked).bump()
        if t is None:
            for rule, p in zip(rules, decisions):
                if rule.shadow and not p.allowed:
                    self._shadow_blocked.bump()
            return d
        rid = None if request is None else request_id_of(request)
        # A shadow policy consumed only if every policy admitted (evaluate_set).
        every = all(p.allowed for p in decisions)
        for rule, p, c in zip(rules, decisions, costs):
            if not rule.shadow:
                if d.allowed:
                    self._near_limit(key, c, rule, p, rid)
                continue
            if not p.allowed:
                self._shadow_blocked.bump()
            t.decision(DecisionEvent(key, c, p, store_error, True, rid, _perf_ms() - t0))
            if every:
                self._near_limit(key, c, rule, p, rid)
        return d

    def _window_of(self, name: str) -> float:
        """Seconds of the window of the policy named ``name`` (the IETF headers of a set)."""
        return self._rule_named(name).window_ms / 1000

    # ---- rules ------------------------------------------------------------------------------------------

    def _override(self, name: str) -> Rule:
        if name == self.rule.policy.algorithm:
            return self.rule
        rule = self._overrides.get(name)
        if rule is None:
            rule = self.rule.with_algorithm(name)
            self._overrides[name] = rule
            self._rules[rule.ns] = rule
        return rule

    def _override_of(self, rule: Rule, name: str) -> Rule:
        if rule is self.rule:
            return self._override(name)
        if name == (rule.policy.algorithm or "token_bucket"):
            return rule
        ident = f"{rule.ns}>{name}"
        r = self._overrides.get(ident)
        if r is None:
            r = rule.with_algorithm(name)
            self._overrides[ident] = r
            self._rules[r.ns] = r
        return r

    def _rule_named(self, name: str) -> Rule:
        if self.rule.name == name:
            return self.rule
        for r in list(self._rules.values()):
            if r.name == name:
                return r
        return self.rule

    def _zero(self) -> None:
        self._allowed.zero()
        self._blocked.zero()
        self._shadow_blocked.zero()

    def _async_only(self, method: str) -> None:
        raise HaltConfigError(
            "HALT_ASYNC_STORE",
            f"limiter.{method}(): this limiter's store is asynchronous, so it answers only in async code. "
            f"Fix: await limiter.a{method}(...), or give a synchronous store (InMemoryStore, RedisStore).",
        )


#: Rejections that record a violation under ``penalties`` (not store errors, nor a cost that can never fit).
_VIOLATIONS = ("limit", "cooldown", "penalty")


def _violation(d: Decision, op: str, active: bool) -> bool:
    """Whether a decision under penalties records a violation. A peek records none, but says ``penalty`` for a
    rejection under the reduced limit (a check's does already: ``_finish``)."""
    if op != "check":
        if active and d.reason == "limit":
            d.reason = "penalty"
        return False
    return not d.allowed and d.reason in _VIOLATIONS


def check_penalties(p: object, synchronous: bool) -> Optional[PenaltyManager]:
    """The ``penalties`` option, checked: a PenaltyManager whose store answers as the limiter's does."""
    if p is None:
        return None
    from halt.core.penalty import PenaltyManager

    if not isinstance(p, PenaltyManager):
        raise HaltConfigError(
            "HALT_INVALID_PENALTY",
            "RateLimiter: penalties must be a PenaltyManager. "
            "Fix: penalties=PenaltyManager(PenaltyConfig(threshold=10, duration='5m')).",
        )
    if synchronous and not p._calls.synchronous:
        raise HaltConfigError(
            "HALT_INVALID_PENALTY",
            "RateLimiter: the limiter answers synchronously but its PenaltyManager store is asynchronous. "
            "Fix: give both the same kind of store (e.g. both in memory, or both in Redis).",
        )
    return p


def exempt_decision(rule: Rule) -> Decision:
    """The decision of an exempt request: admitted, never counted, no headers."""
    return Decision(True, rule.limit, math.floor(rule.capacity), 0, 0, rule.name, "exempt", 0.0)


def to_decision(rule: Rule, o: Outcome) -> Decision:
    """Turn an algorithm outcome (ms) into the public decision (seconds)."""
    return Decision(
        o.allowed,
        rule.limit,
        o.remaining,
        math.ceil(o.reset_at_ms / 1000),
        math.ceil(o.retry_after_ms / 1000),
        rule.name,
        o.reason,
        o.delay_ms / 1000,
    )


def _policy_key(p: Any) -> Hashable:
    """A resolver's policy (a Policy or a mapping) as a cache key."""
    return p if isinstance(p, Policy) else ("mapping", tuple(sorted(p.items())))


def _valid_cost(c: object) -> bool:
    return isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c >= 0


def _checked_cost(cost: object) -> float:
    if _valid_cost(cost):
        return cast(float, cost)
    raise HaltConfigError("HALT_INVALID_COST", f"check(): cost must be a finite number >= 0, got {cost!r}.")


def _key_function(key: Union[str, Callable[..., str]]) -> Callable[..., str]:
    if isinstance(key, str):
        return lambda *args, **kwargs: key
    if callable(key):
        return key
    raise HaltConfigError(
        "HALT_INVALID_WRAP",
        "@limiter.limit(key): key must be a string or a function of the arguments returning one.",
    )


async def _with_timeout(call: Awaitable[T], ms: float) -> T:
    """Await ``call``, or raise StoreTimeoutError after ``ms``."""
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(ms / 1000):
                return await call
        return await asyncio.wait_for(call, ms / 1000)
    except (asyncio.TimeoutError, TimeoutError) as e:
        raise StoreTimeoutError(ms) from e


async def _to_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
