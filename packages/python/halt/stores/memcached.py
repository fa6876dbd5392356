"""MemcachedStore (extra ``memcached``, on pymemcache) and AsyncMemcachedStore (extra ``async-memcached``, on
aiomcache): one item per key, updated by the compare-and-set loop of halt/stores/cas.py with gets / cas (add for new
keys). Keys, items and generations are the TypeScript store's (packages/typescript/src/stores/memcached), so Node and
Python services share one cache."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any, Optional

from halt.core.errors import HaltConfigError
from halt.stores.cas import (
    AsyncCasStore,
    CasStore,
    Next,
    Versioned,
    Written,
    check_prefix,
    has_space_or_control,
    key_digest,
    new_version,
    utf8,
)
from halt.stores.redis.keys import escape_key_part, storage_key
from halt.stores.redis.store import num_arg

#: Memcached's limit on a key, in bytes.
MEMCACHED_MAX_KEY_BYTES = 250
THIRTY_DAYS = 30 * 24 * 3600
#: The latest absolute expiry Memcached takes (its exptime is a signed 32-bit number of seconds).
MAX_EXPTIME = 2**31 - 1
#: Generation items are read (and made) up to this many times per read before giving up.
_GENERATION_TRIES = 4


def memcached_key(prefix: str, key: str) -> str:
    """A key Memcached accepts: ``key`` itself when it has at most 250 bytes (UTF-8) and no space or control
    character; otherwise ``<prefix>#`` and the SHA-256 of ``key`` (base64url, 43 characters). A hashed key cannot meet
    an unhashed one: after the prefix those always hold a ``:``, which base64url does not use."""
    if not has_space_or_control(key) and (len(key) * 4 <= MEMCACHED_MAX_KEY_BYTES or len(utf8(key)) <= 250):
        return key
    return f"{prefix}#{key_digest(key)}"


def state_key(prefix: str, ns: str, id: str) -> str:
    """The key of one identity's state (spec/KEYS.md), made safe."""
    return memcached_key(prefix, storage_key(prefix, ns, id))


def namespace_key(prefix: str, ns: str) -> str:
    """The key holding a namespace's generation (``clear(ns)`` replaces it): ``<prefix><escaped ns>:gen``."""
    return memcached_key(prefix, f"{prefix}{escape_key_part(ns)}:gen")


def global_key(prefix: str) -> str:
    """The key holding the store's generation (``clear()`` replaces it): ``<prefix>gen``."""
    return memcached_key(prefix, f"{prefix}gen")


def _token() -> bytes:
    """A new generation: random, 53 bits in base 36 (as JavaScript's ``toString(36)``)."""
    n = new_version()
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out.encode("ascii")


def _text(v: Any) -> Optional[str]:
    if v is None:
        return None
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)


def encode(next: Next, generation: str) -> bytes:
    """The item (JSON, as JavaScript's ``JSON.stringify`` writes it): state, expiry and generations."""
    state = ",".join(num_arg(x) for x in next.state)
    return f'{{"s":[{state}],"e":{num_arg(next.expires_at)},"g":{json.dumps(generation)}}}'.encode()


def decode(item: Any, cas: Any, generation: str) -> Versioned[Any]:
    """A key's record from its item: its state, or absent (an older generation, or unreadable: to be overwritten
    with cas, so the record keeps the cas unique and an empty state)."""
    try:
        v = json.loads(_text(item) or "")
        if isinstance(v, dict) and isinstance(v.get("s"), list) and isinstance(v.get("g"), str):
            e = v.get("e")
            if isinstance(e, (int, float)) and not isinstance(e, bool) and v["g"] == generation:
                return Versioned([float(x) for x in v["s"]], cas, float(e))
    except ValueError:
        pass
    return Versioned([], cas, 0)


def lifetime(ttl_ms: int) -> int:
    """Whole seconds, rounded up, plus one (Memcached's clock ticks in seconds, so an item given N seconds may go
    after N - 1); beyond 30 days Memcached reads an absolute time, a signed 32-bit one: at most 2038-01-19 (a later
    one would overflow and drop the item at once)."""
    seconds = math.ceil(ttl_ms / 1000) + 1
    return seconds if seconds <= THIRTY_DAYS else min(math.ceil(time.time()) + seconds, MAX_EXPTIME)


class _Memcached:
    """What the sync and asyncio stores share: the prefix, keys, and the generations seen."""

    def _configure(self, name: str, prefix: str) -> None:
        self.prefix = check_prefix(prefix, name, memcached=True)
        self._global = utf8(global_key(self.prefix))
        #: The generations seen by the last read of each namespace: a write tags its item with them.
        self._generations: dict[str, str] = {}

    def key(self, ns: str, id: str) -> str:
        """The Memcached key of ``id`` under ``ns``: spec/KEYS.md's, or its hash when too long or unsafe."""
        return state_key(self.prefix, ns, id)

    def _ns_key(self, ns: Optional[str]) -> bytes:
        return self._global if ns is None else utf8(namespace_key(self.prefix, ns))

    def _value(self, ns: str, next: Next) -> bytes:
        return encode(next, self._generations.get(ns, ""))


def _client_error(name: str, client: Any, need: tuple[str, ...], fix: str) -> HaltConfigError:
    return HaltConfigError(
        "HALT_INVALID_MEMCACHED_CLIENT",
        f"{name} needs servers or a client with {', '.join(need)}, got {type(client).__name__}. Fix: {fix}.",
    )


class MemcachedStore(_Memcached, CasStore[Any]):
    """A store in Memcached for synchronous code, on pymemcache: one item per key, written with ``cas`` on the CAS
    unique of the ``gets`` that read it (or ``add`` for a new key), and retried when another writer came first. Items
    expire by themselves (whole seconds, so each is kept one second longer than its state needs); an expired item
    still there decides as a missing one.

    Memcached cannot list keys, so ``clear(ns)`` and ``clear()`` work by generations: each namespace, and the store,
    has a generation item read with every check (in the same ``gets``); a clear replaces it, and items written under an
    older one count as absent. Keys over 250 bytes or with spaces or control characters are hashed (spec/KEYS.md).
    Items, keys and generations are the TypeScript ``MemcachedStore``'s: a Node and a Python service share one limit
    (on one server: several servers are spread by each client's own hashing, which differ).

    ``servers``: ``"host:port"`` or a list of them (a pymemcache ``PooledClient`` for one, a ``HashClient`` for
    several, with ``timeout`` ms as connect and socket timeouts: the bound of each check). Or ``client``: a pymemcache
    client of your own (its ``timeout`` bounds each check; the store does not close it).

    Example::

        from halt import RateLimiter
        from halt.stores.memcached import MemcachedStore

        limiter = RateLimiter(store=MemcachedStore(servers="localhost:11211"), policy=presets.PUBLIC_API)
    """

    speculation = "never"

    def __init__(
        self,
        servers: Any = None,
        *,
        client: Any = None,
        prefix: str = "halt:",
        expiry_grace_ms: int = 0,
        max_attempts: int = 100,
        timeout: float = 500,
    ) -> None:
        CasStore.__init__(self, "MemcachedStore", max_attempts, expiry_grace_ms)
        self._configure("MemcachedStore", prefix)
        fix = "MemcachedStore(servers='localhost:11211') or MemcachedStore(client=pymemcache.PooledClient(...))"
        if (client is None) == (servers is None):
            raise _client_error("MemcachedStore", client, ("gets_many", "cas"), fix)
        if client is None:
            client = _pymemcache_client(servers, timeout, fix)
        elif not all(callable(getattr(client, m, None)) for m in ("gets_many", "cas", "add", "set", "delete")):
            raise _client_error("MemcachedStore", client, ("gets_many", "cas"), fix)
        self.client = client
        self._owns_client = servers is not None

    def _read(self, key: str, ns: str) -> Optional[Versioned[Any]]:
        """The key's item and the generation items, in one ``gets``."""
        k, nk, gk = utf8(key), self._ns_key(ns), self._global
        for _ in range(_GENERATION_TRIES):
            got = self.client.gets_many([gk, nk, k])
            g, n = got.get(gk), got.get(nk)
            if g is None or n is None:
                # First use (or a generation item was evicted): start a generation. Items of any earlier one stay
                # absent.
                for missing, item in ((gk, g), (nk, n)):
                    if item is None:
                        self.client.add(missing, _token(), expire=0, noreply=False)
                continue
            generation = f"{_text(g[0])}.{_text(n[0])}"
            self._generations[ns] = generation
            item = got.get(k)
            return None if item is None else decode(item[0], item[1], generation)
        raise RuntimeError("MemcachedStore: could not establish the generation items")

    def _write(self, key: str, ns: str, next: Next, prev: Optional[Versioned[Any]]) -> Written[Any]:
        value, expire = self._value(ns, next), lifetime(next.ttl_ms)
        if prev is None or prev.version is None:
            ok = self.client.add(utf8(key), value, expire=expire, noreply=False)
        else:
            ok = self.client.cas(utf8(key), value, prev.version, expire=expire, noreply=False)
        return Written.won() if ok else Written.lost()

    def _remove(self, key: str, ns: str) -> None:
        self.client.delete(utf8(key), noreply=False)

    def _remove_all(self, ns: Optional[str]) -> None:
        """A new generation for ``ns`` (or for the whole store): every item written before counts as absent."""
        self.client.set(self._ns_key(ns), _token(), expire=0, noreply=False)

    def get(self, ns: str, id: str) -> Optional[tuple[list[float], float]]:
        """The state a key holds and its expiry, as the store sees it (an older generation's item is absent)."""
        r = self._read(self.key(ns, id), ns)
        return None if r is None or not r.state else (r.state, r.expires_at)

    def close(self) -> None:
        """Close the client if the store made it."""
        if self._owns_client:
            self.client.close()


class AsyncMemcachedStore(_Memcached, AsyncCasStore[Any]):
    """``MemcachedStore`` for asyncio code, on an ``aiomcache.Client``: the same keys, items and generations, every
    method a coroutine (the limiter's ``timeout`` bounds each check), and checks of one key coalesce.

    aiomcache's ``gets`` takes one key, so a read is two commands sent together (the item's ``gets`` and a
    ``multi_get`` of the generations) instead of one. aiomcache 0.8's storage commands (``add``, ``cas``, ``set``,
    ``delete``) loop forever, without yielding to the event loop, on a connection the server has closed
    (``readline()`` at end of stream returns ``b''``, which never ends a line): the store replaces that one method
    of its client with one that raises ``ConnectionResetError`` there, so a Memcached that dies takes the failure
    policy. aiomcache also refuses keys with Unicode whitespace or C1 control characters, which Memcached itself
    accepts: such an identity's key is hashed here (a Node service hashes only spaces and ASCII controls, so it
    would not share that one key).

    Example::

        import aiomcache
        from halt.stores.memcached import AsyncMemcachedStore

        store = AsyncMemcachedStore(client=aiomcache.Client("localhost", 11211))
        d = await RateLimiter(store=store, policy=presets.PUBLIC_API).acheck("user:42")
    """

    speculation = "never"

    def __init__(
        self, *, client: Any, prefix: str = "halt:", expiry_grace_ms: int = 0, max_attempts: int = 100
    ) -> None:
        AsyncCasStore.__init__(self, "AsyncMemcachedStore", max_attempts, expiry_grace_ms)
        self._configure("AsyncMemcachedStore", prefix)
        if not all(callable(getattr(client, m, None)) for m in ("gets", "multi_get", "cas", "add", "set", "delete")):
            raise _client_error(
                "AsyncMemcachedStore",
                client,
                ("gets", "multi_get", "cas"),
                "AsyncMemcachedStore(client=aiomcache.Client('localhost', 11211))",
            )
        _guard_eof(client)
        self.client = client

    def key(self, ns: str, id: str) -> str:
        key = state_key(self.prefix, ns, id)
        return key if _AIOMCACHE_KEY.match(key) else f"{self.prefix}#{key_digest(storage_key(self.prefix, ns, id))}"

    async def _read(self, key: str, ns: str) -> Optional[Versioned[Any]]:
        import asyncio

        k, nk, gk = utf8(key), self._ns_key(ns), self._global
        for _ in range(_GENERATION_TRIES):
            (g, n), (item, cas) = await asyncio.gather(self.client.multi_get(gk, nk), self.client.gets(k))
            if g is None or n is None:
                for missing, got in ((gk, g), (nk, n)):
                    if got is None:
                        await self.client.add(missing, _token(), 0)
                continue
            generation = f"{_text(g)}.{_text(n)}"
            self._generations[ns] = generation
            return None if item is None else decode(item, cas, generation)
        raise RuntimeError("AsyncMemcachedStore: could not establish the generation items")

    async def _write(self, key: str, ns: str, next: Next, prev: Optional[Versioned[Any]]) -> Written[Any]:
        value, expire = self._value(ns, next), lifetime(next.ttl_ms)
        if prev is None or prev.version is None:
            ok = await self.client.add(utf8(key), value, expire)
        else:
            ok = await self.client.cas(utf8(key), value, prev.version, expire)
        return Written.won() if ok else Written.lost()

    async def _remove(self, key: str, ns: str) -> None:
        await self.client.delete(utf8(key))

    async def get(self, ns: str, id: str) -> Optional[tuple[list[float], float]]:
        """As ``MemcachedStore.get()``."""
        r = await self._read(self.key(ns, id), ns)
        return None if r is None or not r.state else (r.state, r.expires_at)

    async def _remove_all(self, ns: Optional[str]) -> None:
        await self.client.set(self._ns_key(ns), _token(), 0)


def _guard_eof(client: Any) -> None:
    """Give an aiomcache client a ``_execute_simple_command`` that raises at end of stream instead of looping."""
    if not callable(getattr(client, "_execute_simple_command", None)):
        return

    async def execute(conn: Any, raw_command: bytes) -> bytes:
        response, line = bytearray(), b""
        conn.writer.write(raw_command)
        await conn.writer.drain()
        while not line.endswith(b"\r\n"):
            line = await conn.reader.readline()
            if not line:
                raise ConnectionResetError("memcached closed the connection")
            response.extend(line)
        return bytes(response[:-2])

    client._execute_simple_command = execute


#: What aiomcache's key check accepts (its own pattern).
_AIOMCACHE_KEY = re.compile("^[^\\s\x00-\x1f\x7f-\x9f]{1,250}$")


def _pymemcache_client(servers: Any, timeout: object, fix: str) -> Any:
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < float("inf"):
        raise HaltConfigError(
            "HALT_INVALID_TIMEOUT",
            f"MemcachedStore: timeout must be a positive number of milliseconds, got {timeout!r}. Fix: timeout=500.",
        )
    listed = [servers] if isinstance(servers, str) else servers
    if not isinstance(listed, (list, tuple)) or not listed or not all(isinstance(s, str) and ":" in s for s in listed):
        raise _client_error("MemcachedStore", servers, ("gets_many", "cas"), fix)
    from pymemcache.client.base import PooledClient
    from pymemcache.client.hash import HashClient

    opts: dict[str, Any] = {"connect_timeout": timeout / 1000, "timeout": timeout / 1000, "default_noreply": False}
    hosts = [(h, int(p)) for h, _, p in (s.rpartition(":") for s in listed)]
    if len(hosts) == 1:
        return PooledClient(hosts[0], max_pool_size=64, **opts)
    return HashClient(hosts, use_pooling=True, max_pool_size=64, **opts)


__all__ = [
    "MEMCACHED_MAX_KEY_BYTES",
    "AsyncMemcachedStore",
    "MemcachedStore",
    "decode",
    "encode",
    "global_key",
    "memcached_key",
    "namespace_key",
    "state_key",
]
