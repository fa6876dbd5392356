"""RedisStore and AsyncRedisStore: the algorithms run inside Redis by the shared Lua scripts of spec/redis, one round
trip per check, on redis-py (sync or asyncio, single server or Cluster)."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Mapping, Optional, Sequence, Union

from halt.core.errors import HaltConfigError
from halt.core.policy import Rule
from halt.core.types import Outcome
from halt.stores.redis.cache import BlockedKeyCache
from halt.stores.redis.keys import escape_key_part, scan_pattern, storage_key
from halt.stores.redis.scripts import SCRIPTS, SET_SCRIPT, SET_SHA1, SHA1

_REASONS = (None, "limit", "cooldown", "cost_exceeds_capacity")
_SET = "limit_set"
#: What ``blocked_key_cache=True`` holds.
DEFAULT_CACHE_KEYS = 10_000
#: ``blocked_key_cache``: True, False, or a mapping with ``max_keys``.
BlockedKeyCacheOption = Union[bool, Mapping[str, Any]]


def _num(x: Any) -> float:
    """A number of the reply: an integer reply, or an exact decimal string (fractional values)."""
    if isinstance(x, int):
        return x
    v = float(x)
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def num_arg(x: float) -> str:
    """A number as the scripts read it: the shortest text that reads back to the same double (like JavaScript's
    String(x): whole numbers without '.0')."""
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, int):
        return str(x)
    if math.isfinite(x) and x.is_integer() and abs(x) < 2**53:
        return str(int(x))
    return repr(x)


class RedisStoreCounters:
    """Counters for tests, benchmarks and dashboards."""

    __slots__ = ("cache_hits", "calls", "checks", "script_loads")

    def __init__(self) -> None:
        #: Script calls sent to Redis (round trips, including NOSCRIPT reloads).
        self.calls = 0
        #: Checks and peeks answered by Redis.
        self.checks = 0
        #: Times a script was sent in full (first use, or NOSCRIPT after a restart, failover or SCRIPT FLUSH).
        self.script_loads = 0
        #: Checks answered by the blocked-key cache without a round trip.
        self.cache_hits = 0


class _Base:
    """What the sync and asyncio stores share: options, keys, arguments, the reply."""

    shared = True

    def __init__(
        self,
        client: Any,
        prefix: str,
        time: str,
        expiry_grace_ms: int,
        blocked_key_cache: BlockedKeyCacheOption,
        asynchronous: bool,
    ) -> None:
        if client is None:
            raise HaltConfigError(
                "HALT_INVALID_REDIS_CLIENT", "RedisStore needs a client. Fix: RedisStore(redis.Redis.from_url(url))."
            )
        if not callable(getattr(client, "evalsha", None)):
            raise HaltConfigError(
                "HALT_INVALID_REDIS_CLIENT",
                f"RedisStore: client must be a redis-py client (redis.Redis, redis.cluster.RedisCluster, or their "
                f"redis.asyncio forms), got {type(client).__name__}.",
            )
        is_async = _is_async_client(client)
        if is_async != asynchronous:
            raise HaltConfigError(
                "HALT_INVALID_REDIS_CLIENT",
                "RedisStore takes a synchronous redis-py client and AsyncRedisStore an asyncio one "
                f"(redis.asyncio), got {type(client).__module__}.{type(client).__name__}. "
                f"Fix: {'AsyncRedisStore' if is_async else 'RedisStore'}(client).",
            )
        if not isinstance(prefix, str) or len(prefix) == 0 or "{" in prefix or "}" in prefix:
            raise HaltConfigError(
                "HALT_INVALID_REDIS_PREFIX",
                "RedisStore: prefix must be a non-empty string without '{' or '}' (they would change the Redis "
                f"Cluster hash tag), got {prefix!r}. Fix: prefix='halt:'.",
            )
        if time not in ("client", "server"):
            raise HaltConfigError(
                "HALT_INVALID_REDIS_TIME",
                f"RedisStore: time must be 'client' (the limiter's clock) or 'server' (Redis TIME), got {time!r}.",
            )
        if not isinstance(expiry_grace_ms, int) or isinstance(expiry_grace_ms, bool) or expiry_grace_ms < 0:
            raise HaltConfigError(
                "HALT_INVALID_EXPIRY_GRACE",
                "RedisStore: expiry_grace_ms must be a whole number of milliseconds >= 0, "
                f"got {expiry_grace_ms!r}. Fix: omit it (0) or e.g. 1000.",
            )
        #: The blocked-key cache, when turned on.
        self.cache = _blocked_key_cache(blocked_key_cache)
        self.client = client
        self.prefix = prefix
        self.time = time
        self.cluster = _is_cluster(client)
        self.counters = RedisStoreCounters()
        self._grace = str(expiry_grace_ms)
        self._loaded: set[str] = set()
        #: Per Rule object: ARGV[2..8] and the signature (the policy's numbers) of blocked-key cache entries.
        self._params: dict[int, tuple[Rule, list[str], str]] = {}

    def key(self, ns: str, id: str) -> str:
        """The Redis key holding ``id``'s state under namespace ``ns`` (spec/KEYS.md)."""
        return storage_key(self.prefix, ns, id)

    def _info(self, rule: Rule) -> tuple[Rule, list[str], str]:
        """What the store derives once per Rule: ARGV[2..8] and the cache signature."""
        cached = self._params.get(id(rule))
        if cached is None or cached[0] is not rule:
            params = [num_arg(v) for v in (rule.limit, rule.window_ms, rule.burst, rule.block_ms, rule.precision)]
            params += ["1" if rule.shaping else "0", self._grace]
            cached = (rule, params, f"{rule.algorithm.name}:{','.join(params)}")
            if len(self._params) > 1000:
                self._params.clear()
            self._params[id(rule)] = cached
        return cached

    def _args(self, rule: Rule, now: float, cost: Optional[float]) -> list[str]:
        """ARGV: now ('' with the server's clock), the rule's numbers, the cost (or 'peek')."""
        now_arg = "" if self.time == "server" else num_arg(now)
        return [now_arg, *self._info(rule)[1], "peek" if cost is None else num_arg(cost)]

    def _cached(self, key: str, rule: Rule, now: float, cost: Optional[float]) -> Optional[Outcome]:
        """The blocked-key cache's answer, or None when Redis must decide."""
        cache = self.cache
        if cache is None:
            return None
        o = cache.answer(key, rule, self._info(rule)[2], now, 0 if cost is None else cost, cost is None)
        if o is not None:
            self.counters.cache_hits += 1
        return o

    def _set_call(
        self, id: str, rules: Sequence[Rule], now: float, costs: Sequence[float]
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of the limit-set script (spec/redis/README.md)."""
        keys = [self.key(r.ns, id) for r in rules]
        if self.cluster and len(keys) > 1 and id == "":
            raise ValueError(
                "RedisStore: a limit set on Redis Cluster needs a non-empty identity (its keys share a hash slot "
                "through it)"
            )
        args = ["" if self.time == "server" else num_arg(now), self._grace]
        for r, c in zip(rules, costs):
            args += [r.algorithm.name, *self._info(r)[1][:6], "1" if r.shadow else "0", num_arg(c)]
        return keys, args

    def _set_outcomes(self, rules: Sequence[Rule], reply: Any) -> list[Outcome]:
        """The limit-set script's reply (``{now, allowed, then 6 values per key}``) as outcomes."""
        if not isinstance(reply, (list, tuple)) or len(reply) != 2 + 6 * len(rules):
            raise RuntimeError(f"RedisStore: unexpected reply to the limit-set script: {reply!r:.200}")
        self.counters.checks += 1
        return [_outcome_at(reply, 2 + 6 * i) for i in range(len(rules))]

    def _pattern(self, ns: Optional[str]) -> str:
        return scan_pattern(self.prefix, ns)

    def _forget(self, ns: Optional[str]) -> None:
        """Drop the blocked-key cache's entries of ``ns`` (or all)."""
        if self.cache is not None:
            self.cache.delete_prefix(self.prefix if ns is None else f"{self.prefix}{escape_key_part(ns)}:{{")

    def _outcome(self, key: str, rule: Rule, now: float, reply: Any) -> Outcome:
        """The script's reply (``{now, then 7 values per key}``, spec/redis/README.md) as an outcome; a rejected
        key's state goes to the blocked-key cache."""
        if not isinstance(reply, (list, tuple)) or len(reply) != 8:
            raise RuntimeError(f"RedisStore: unexpected reply to the {rule.algorithm.name} script: {reply!r:.200}")
        self.counters.checks += 1
        o = _outcome_at(reply, 1)
        if not o.allowed and self.cache is not None and isinstance(reply[7], (list, tuple)):
            state = [float(_num(x)) for x in reply[7]]
            self.cache.remember(key, rule, self._info(rule)[2], state, _num(reply[0]) - now)
        return o


class RedisStore(_Base):
    """A store in Redis (single server or Cluster) for synchronous code, on redis-py's ``redis.Redis`` or
    ``redis.cluster.RedisCluster``. Each algorithm runs inside Redis as the Lua script of ``spec/redis/`` (the
    very scripts the TypeScript SDK loads), so every check is one atomic round trip: EVALSHA, with the script sent
    again when Redis answers NOSCRIPT. A Node and a Python service on one Redis share one limit.

    The store does not own the client: close it yourself. Give the client a ``socket_timeout``: it bounds each
    check (the limiter's ``timeout`` applies to asyncio stores).

    Example::

        import redis
        from halt import RateLimiter
        from halt.stores.redis import RedisStore

        client = redis.Redis.from_url("redis://localhost:6379", socket_timeout=0.1)
        limiter = RateLimiter(store=RedisStore(client), policy={"name": "api", "limit": 100, "window": "1m"})
        limiter.check("user:42")
    """

    synchronous = True

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "halt:",
        time: str = "client",
        expiry_grace_ms: int = 0,
        blocked_key_cache: BlockedKeyCacheOption = False,
    ) -> None:
        """``blocked_key_cache``: remember keys Redis rejected and answer them in process, without a round trip,
        while they stay rejected (cooldowns; over-limit keys of policies without ``block_duration``). ``True``
        holds up to 10,000 keys, ``{"max_keys": n}`` up to ``n``. Default off."""
        super().__init__(client, prefix, time, expiry_grace_ms, blocked_key_cache, asynchronous=False)

    def consume(self, ns: str, id: str, rule: Rule, now: float, cost: float) -> Outcome:
        return self._call(ns, id, rule, now, cost)

    def consume_set(self, id: str, rules: Sequence[Rule], now: float, costs: Sequence[float]) -> list[Outcome]:
        """A limit set in one atomic script call (spec/redis/limit_set.lua) over the policies' keys of ``id``,
        which share the identity's hash slot on a Cluster. Not answered by the blocked-key cache: a set's
        rejection may still write (a cooldown another policy starts)."""
        from redis.exceptions import NoScriptError

        keys, args = self._set_call(id, rules, now, costs)
        self.counters.calls += 1
        if _SET in self._loaded:
            try:
                return self._set_outcomes(rules, self.client.evalsha(SET_SHA1, len(keys), *keys, *args))
            except NoScriptError:
                self.counters.calls += 1
        self.counters.script_loads += 1
        reply = self.client.eval(SET_SCRIPT, len(keys), *keys, *args)
        self._loaded.add(_SET)
        return self._set_outcomes(rules, reply)

    def peek(self, ns: str, id: str, rule: Rule, now: float) -> Outcome:
        return self._call(ns, id, rule, now, None)

    def reset(self, ns: str, id: str) -> None:
        key = self.key(ns, id)
        if self.cache is not None:
            self.cache.delete(key)
        self.client.delete(key)

    def clear(self, ns: Optional[str] = None) -> None:
        """Delete every key of ``ns`` (SCAN on every master), or every key under the prefix."""
        self._forget(ns)
        pattern = self._pattern(ns)
        if self.cluster:
            for k in list(self.client.scan_iter(match=pattern, count=500, target_nodes=self.client.PRIMARIES)):
                self.client.delete(k)
            return
        batch: list[Any] = []
        for k in self.client.scan_iter(match=pattern, count=500):
            batch.append(k)
            if len(batch) >= 500:
                self.client.delete(*batch)
                batch = []
        if batch:
            self.client.delete(*batch)

    def _call(self, ns: str, id: str, rule: Rule, now: float, cost: Optional[float]) -> Outcome:
        from redis.exceptions import NoScriptError

        key = self.key(ns, id)
        hit = self._cached(key, rule, now, cost)
        if hit is not None:
            return hit
        args = self._args(rule, now, cost)
        name = rule.algorithm.name
        self.counters.calls += 1
        if name in self._loaded:
            try:
                return self._outcome(key, rule, now, self.client.evalsha(SHA1[name], 1, key, *args))
            except NoScriptError:
                self.counters.calls += 1
        self.counters.script_loads += 1
        reply = self.client.eval(SCRIPTS[name], 1, key, *args)
        self._loaded.add(name)
        return self._outcome(key, rule, now, reply)


class AsyncRedisStore(_Base):
    """RedisStore for asyncio code, on ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``: every
    method is a coroutine, and the limiter's ``acheck()`` awaits it (under its ``timeout``), so a check never blocks
    the event loop.

    Example::

        import redis.asyncio
        from halt.stores.redis import AsyncRedisStore

        limiter = RateLimiter(store=AsyncRedisStore(redis.asyncio.Redis()), policy=presets.PUBLIC_API)
        d = await limiter.acheck("user:42")
    """

    synchronous = False

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "halt:",
        time: str = "client",
        expiry_grace_ms: int = 0,
        blocked_key_cache: BlockedKeyCacheOption = False,
    ) -> None:
        super().__init__(client, prefix, time, expiry_grace_ms, blocked_key_cache, asynchronous=True)
        self._ready = not self.cluster
        self._init_lock: Optional[asyncio.Lock] = None

    async def consume(self, ns: str, id: str, rule: Rule, now: float, cost: float) -> Outcome:
        return await self._call(ns, id, rule, now, cost)

    async def consume_set(self, id: str, rules: Sequence[Rule], now: float, costs: Sequence[float]) -> list[Outcome]:
        """``RedisStore.consume_set`` for asyncio code."""
        from redis.exceptions import NoScriptError

        if not self._ready:
            await self._initialize()
        keys, args = self._set_call(id, rules, now, costs)
        self.counters.calls += 1
        if _SET in self._loaded:
            try:
                return self._set_outcomes(rules, await self.client.evalsha(SET_SHA1, len(keys), *keys, *args))
            except NoScriptError:
                self.counters.calls += 1
        self.counters.script_loads += 1
        reply = await self.client.eval(SET_SCRIPT, len(keys), *keys, *args)
        self._loaded.add(_SET)
        return self._set_outcomes(rules, reply)

    async def peek(self, ns: str, id: str, rule: Rule, now: float) -> Outcome:
        return await self._call(ns, id, rule, now, None)

    async def reset(self, ns: str, id: str) -> None:
        key = self.key(ns, id)
        if self.cache is not None:
            self.cache.delete(key)
        await self.client.delete(key)

    async def clear(self, ns: Optional[str] = None) -> None:
        self._forget(ns)
        pattern = self._pattern(ns)
        if self.cluster:
            keys = [
                k async for k in self.client.scan_iter(match=pattern, count=500, target_nodes=self.client.PRIMARIES)
            ]
            for k in keys:
                await self.client.delete(k)
            return
        batch: list[Any] = []
        async for k in self.client.scan_iter(match=pattern, count=500):
            batch.append(k)
        for i in range(0, len(batch), 500):
            await self.client.delete(*batch[i : i + 500])

    async def _initialize(self) -> None:
        """Discover the Cluster once, before the first command: redis-py's asyncio cluster client, initialized
        lazily by many concurrent first commands, can fail some of them."""
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:
            if not self._ready:
                await self.client.initialize()
                self._ready = True

    async def _call(self, ns: str, id: str, rule: Rule, now: float, cost: Optional[float]) -> Outcome:
        from redis.exceptions import NoScriptError

        if not self._ready:
            await self._initialize()
        key = self.key(ns, id)
        hit = self._cached(key, rule, now, cost)
        if hit is not None:
            return hit
        args = self._args(rule, now, cost)
        name = rule.algorithm.name
        self.counters.calls += 1
        if name in self._loaded:
            try:
                return self._outcome(key, rule, now, await self.client.evalsha(SHA1[name], 1, key, *args))
            except NoScriptError:
                self.counters.calls += 1
        self.counters.script_loads += 1
        reply = await self.client.eval(SCRIPTS[name], 1, key, *args)
        self._loaded.add(name)
        return self._outcome(key, rule, now, reply)


def _outcome_at(reply: Any, r: int) -> Outcome:
    """The six numbers a script returns per check (reason code, remaining, reset, retry, delay, expiry) from
    ``reply[r]`` on."""
    code = int(reply[r])
    return Outcome(
        code == 0,
        int(_num(reply[r + 1])),
        _num(reply[r + 2]),
        _num(reply[r + 3]),
        _REASONS[code],
        _num(reply[r + 4]),
        _num(reply[r + 5]),
    )


def _blocked_key_cache(option: object) -> Optional[BlockedKeyCache]:
    """The ``blocked_key_cache`` option, validated."""
    if option is False:
        return None
    if option is True:
        return BlockedKeyCache(DEFAULT_CACHE_KEYS)
    if isinstance(option, Mapping) and set(option) <= {"max_keys"}:
        n = option.get("max_keys", DEFAULT_CACHE_KEYS)
        if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
            return BlockedKeyCache(n)
    raise HaltConfigError(
        "HALT_INVALID_BLOCKED_KEY_CACHE",
        "RedisStore: blocked_key_cache must be True, False or {'max_keys': n} with a whole number n >= 1, "
        f"got {option!r}.",
    )


def _is_async_client(client: Any) -> bool:
    try:
        import redis.asyncio as aredis
        from redis.asyncio.cluster import RedisCluster as AsyncCluster
    except ImportError:  # pragma: no cover - redis-py is what this store runs on
        return False
    return isinstance(client, (aredis.Redis, AsyncCluster))


def _is_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster as AsyncCluster
    from redis.cluster import RedisCluster

    return isinstance(client, (RedisCluster, AsyncCluster))


__all__ = ["AsyncRedisStore", "RedisStore", "RedisStoreCounters", "escape_key_part", "num_arg"]
