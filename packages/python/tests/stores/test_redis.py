"""RedisStore and AsyncRedisStore on real Redis (single server and a 3-master Cluster): the conformance suite (every
spec vector with the stored state and TTL, concurrency across processes, a stalled server), then what is Redis's own:
the scripts and key layout of spec/KEYS.md, NOSCRIPT reloads, TTLs, server time, failover."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from halt import HaltConfigError, Policy, RateLimiter
from halt.stores.redis import SCRIPTS, SHA1, AsyncRedisStore, RedisStore, storage_key
from halt.stores.redis.store import num_arg
from tests.stores.conformance import *  # noqa: F403 (the conformance tests)
from tests.stores.conformance import Inspected, StoreHarness
from tests.stores.conftest import _need
from tests.stores.factories import open_redis
from tests.support import SPEC_DIR, FakeClock, cluster_nodes, redis_url

#: Vectors run on frozen explicit times while Redis expires keys in real time: keep keys 1 s past their expiry.
GRACE_MS = 1000


def doubles(raw: bytes) -> list[float]:
    """A stored state: little-endian IEEE-754 doubles (spec/KEYS.md)."""
    return list(struct.unpack(f"<{len(raw) // 8}d", raw))


@pytest.fixture(scope="module", params=["single-sync", "single-async", "cluster-sync", "cluster-async"])
def harness(request: Any) -> Iterator[StoreHarness]:
    kind, form = request.param.split("-")
    if kind == "single":
        conn = redis_url()
        if conn is None:
            _need("HALT_TEST_REDIS_URL")
        assert conn is not None
        inspector: Any = redis.Redis.from_url(conn)
        masters = [inspector]
    else:
        nodes = cluster_nodes()
        if not nodes:
            _need("HALT_TEST_REDIS_CLUSTER_NODES")
        conn = ",".join(f"{h}:{p}" for h, p in nodes)
        from redis.cluster import ClusterNode, RedisCluster

        inspector = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes])
        masters = [redis.Redis(host=h, port=p) for h, p in nodes]
    prefix = f"halt-test-{request.param}-{uuid.uuid4().hex[:8]}:"
    # The sync client's socket timeout bounds a check (the stall test waits for it); asyncio: the limiter's timeout.
    timeout = "0.4" if form == "sync" else "5"
    closers: dict[int, Any] = {}

    def create() -> Any:
        store, close = open_redis(kind, conn, prefix, form, str(GRACE_MS), timeout)
        closers[id(store)] = close
        return store

    def inspect(store: Any, ns: str, id: str) -> Optional[Inspected]:
        key = store.key(ns, id)
        raw = inspector.get(key)
        return None if raw is None else Inspected(state=doubles(raw), ttl_ms=inspector.pttl(key))

    async def expire(store: Any, at: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, at / 1000 - time.time()) + 0.025)

    def stall(store: Any, ms: float) -> None:
        for m in masters:
            m.execute_command("CLIENT", "PAUSE", str(int(ms)), "ALL")
        time.sleep(ms / 1000)

    yield StoreHarness(
        name=f"{'Async' if form == 'async' else ''}RedisStore ({kind})",
        create=create,
        dispose=lambda s: closers.pop(id(s))(),
        inspect=inspect,
        expire=expire,
        grace_ms=GRACE_MS,
        # A sync Cluster client retries a timed-out command on a refreshed topology: bounded, but not by one timeout.
        stall=None if (kind, form) == ("cluster", "sync") else stall,
        stall_timeout_ms=float(timeout) * 1000 if form == "sync" else 150,
        worker=("tests.stores.factories:open_redis", [kind, conn, prefix, form, str(GRACE_MS)]),
    )
    inspector.close()
    for m in masters:
        m.close()


def stored_state(client: Any, key: str) -> list[float]:
    raw = client.get(key)
    assert raw is not None
    return doubles(raw)


def test_the_packaged_scripts_are_spec_redis_byte_for_byte() -> None:
    for name, text in SCRIPTS.items():
        assert (SPEC_DIR / "redis" / f"{name}.lua").read_text(encoding="utf-8") == text
    ts = (Path(SPEC_DIR).parent / "packages/typescript/src/stores/redis/scripts.ts").read_text()
    for name, sha in SHA1.items():
        assert f"{name}: '{sha}'" in ts  # the same SHA1 the TypeScript SDK sends


def test_key_layout_of_spec_keys_md() -> None:
    assert storage_key("halt:", "api:tb", "ip:203.0.113.7") == "halt:api:tb:{ip:203.0.113.7}"
    assert storage_key("halt:", "api:tb", "x}y") == "halt:api:tb:{x%7Dy}"
    assert storage_key("halt:", "api:tb", "%7B") == "halt:api:tb:{%257B}"
    assert storage_key("halt:", "a{b}:tb", "user:42") == "halt:a%7Bb%7D:tb:{user:42}"


def test_numbers_are_sent_as_javascript_writes_them() -> None:
    assert [num_arg(x) for x in (60000.0, 1700000000000, 0.1, 2.5, 1e-7, True)] == [
        "60000",
        "1700000000000",
        "0.1",
        "2.5",
        "1e-07",
        "1",
    ]


def test_noscript_reload_and_counters(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix)
    limiter = RateLimiter(policy=Policy(name="api", limit=5, window=60), store=store, clock=FakeClock())
    limiter.check("a")
    limiter.check("a")
    assert (store.counters.calls, store.counters.script_loads, store.counters.checks) == (2, 1, 2)
    sync_client.script_flush()  # on a Cluster: every node
    assert limiter.check("a").remaining == 2
    assert store.counters.script_loads == 2 and store.counters.calls == 4
    limiter.clear()


def test_reset_clear_and_ttl(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix)
    clock = FakeClock()
    a = RateLimiter(policy=Policy(name="a", limit=5, window=10), store=store, clock=clock)
    b = RateLimiter(policy=Policy(name="b", limit=5, window=10), store=store, clock=clock)
    for ident in ("u1", "u2", "we{ird}%"):
        a.check(ident)
        b.check(ident)
    key = store.key("a:tb", "u1")
    assert 0 < sync_client.pttl(key) <= 2000  # one unit back after 2 s: then the state is fresh
    a.reset("u1")
    assert sync_client.exists(key) == 0
    a.clear()
    assert sync_client.exists(store.key("a:tb", "u2")) == 0
    assert sync_client.exists(store.key("b:tb", "we{ird}%")) == 1
    store.clear()
    assert sync_client.exists(store.key("b:tb", "u2")) == 0


def test_server_time(sync_client: Any, prefix: str) -> None:
    store = RedisStore(sync_client, prefix=prefix, time="server")
    limiter = RateLimiter(policy=Policy(limit=2, window=60), store=store, clock=lambda: 0)
    d = limiter.check("a")
    assert d.allowed and d.reset_at > 1_700_000_000  # Redis's clock, not the limiter's
    store.clear()


async def test_sync_calls_on_an_async_store_say_what_to_do(prefix: str) -> None:
    import redis.asyncio

    limiter = RateLimiter(policy=Policy(limit=1, window=1), store=AsyncRedisStore(redis.asyncio.Redis(), prefix=prefix))
    with pytest.raises(HaltConfigError) as e:
        limiter.check("a")
    assert e.value.code == "HALT_ASYNC_STORE" and "acheck" in str(e.value)


async def test_options_are_validated() -> None:  # async: redis.asyncio clients need a loop on 3.9
    import redis.asyncio

    client = redis.Redis()
    for kw, code in (
        ({"prefix": ""}, "HALT_INVALID_REDIS_PREFIX"),
        ({"prefix": "a{b"}, "HALT_INVALID_REDIS_PREFIX"),
        ({"time": "local"}, "HALT_INVALID_REDIS_TIME"),
        ({"expiry_grace_ms": -1}, "HALT_INVALID_EXPIRY_GRACE"),
    ):
        with pytest.raises(HaltConfigError) as e:
            RedisStore(client, **kw)
        assert e.value.code == code
    for bad in (None, object(), redis.asyncio.Redis()):
        with pytest.raises(HaltConfigError) as e:
            RedisStore(bad)
        assert e.value.code == "HALT_INVALID_REDIS_CLIENT"
    with pytest.raises(HaltConfigError):
        AsyncRedisStore(client)


@pytest.mark.parametrize("mode", ["fallback", "open", "closed"])
def test_failover_when_redis_is_unreachable(mode: str) -> None:
    # Nothing listens on port 1; no client-side retries, so each failure is one refused connect.
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    errors: list[Any] = []

    class Errors:
        def on_error(self, event: Any) -> None:
            errors.append(event)

    clock = FakeClock()
    limiter = RateLimiter(
        policy=Policy(limit=2, window=60),
        store=RedisStore(dead),
        on_store_error=mode,
        clock=clock,
        telemetry=Errors(),
    )
    ds = [limiter.check("a") for _ in range(3)]
    if mode == "fallback":
        assert [d.allowed for d in ds] == [True, True, False] and ds[0].reason is None
    else:
        assert {d.reason for d in ds} == {"store_error"} and all(d.allowed == (mode == "open") for d in ds)
    assert len(errors) == 1 and errors[0].action == mode  # then the circuit is open: no more calls
    assert limiter.store_down
    clock.advance(1000)
    limiter.check("a")  # one probe, which fails again
    assert len(errors) == 2


async def test_async_failover_times_out(prefix: str) -> None:
    import redis.asyncio

    dead = redis.asyncio.Redis(port=1, retry=AsyncRetry(NoBackoff(), 0))
    limiter = RateLimiter(
        policy=Policy(limit=2, window=60), store=AsyncRedisStore(dead, prefix=prefix), on_store_error="closed"
    )
    d = await limiter.acheck("a")
    assert (d.allowed, d.reason, d.retry_after) == (False, "store_error", 1)
    await dead.aclose()
