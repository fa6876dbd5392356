"""Stores on new connections, for the test modules and for the worker processes of the conformance suite's
concurrency test (tests/stores/worker.py calls ``open_<kind>(*args)`` for a ``(store, close)`` pair)."""

from __future__ import annotations

from typing import Any, Callable


def open_postgres(
    url: str, table: str, prefix: str, form: str = "sync", timeout: str = "2000", connections: str = "1"
) -> Any:
    """A PostgresStore (``form`` sync) or AsyncPostgresStore on ``table``, without the cleanup timer, with
    ``connections`` opened before the first check."""
    from halt.stores.postgres import AsyncPostgresStore, PostgresStore

    cls: Any = PostgresStore if form == "sync" else AsyncPostgresStore
    store = cls(
        url, table=table, prefix=prefix, cleanup_interval=0, timeout=float(timeout), min_connections=int(connections)
    )
    return store, store.close if form == "sync" else store.aclose


def open_memcached(url: str, prefix: str, form: str = "sync", timeout: str = "2000") -> tuple[Any, Callable[[], Any]]:
    """A MemcachedStore (``form`` sync) or AsyncMemcachedStore on the server ``host:port``."""
    host, _, port = url.rpartition(":")
    seconds = float(timeout) / 1000
    if form == "sync":
        from pymemcache.client.base import PooledClient

        from halt.stores.memcached import MemcachedStore

        client = PooledClient((host, int(port)), connect_timeout=seconds, timeout=seconds, max_pool_size=64)
        return MemcachedStore(client=client, prefix=prefix), client.close
    import aiomcache

    from halt.stores.memcached import AsyncMemcachedStore

    aclient = aiomcache.Client(host, int(port), pool_size=16)
    return AsyncMemcachedStore(client=aclient, prefix=prefix), aclient.close


def open_redis(kind: str, conn: str, prefix: str, form: str = "sync", grace: str = "1000", timeout: str = "2") -> Any:
    """A RedisStore (``form`` sync) or AsyncRedisStore on a single server (``kind`` single, ``conn`` its URL) or a
    Cluster (``conn``: ``host:port,...``), with ``timeout`` seconds as the client's socket timeout."""
    import redis
    import redis.asyncio

    from halt.stores.redis import AsyncRedisStore, RedisStore

    seconds = float(timeout)
    nodes = [(h, int(p)) for h, _, p in (n.rpartition(":") for n in conn.split(","))] if kind == "cluster" else []
    client: Any
    if form == "sync":
        if kind == "cluster":
            from redis.cluster import ClusterNode, RedisCluster

            client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], socket_timeout=seconds)
        else:
            client = redis.Redis.from_url(conn, socket_timeout=seconds)
        return RedisStore(client, prefix=prefix, expiry_grace_ms=int(grace)), client.close
    if kind == "cluster":
        from redis.asyncio.cluster import ClusterNode as AsyncNode
        from redis.asyncio.cluster import RedisCluster as AsyncCluster

        client = AsyncCluster(startup_nodes=[AsyncNode(h, p) for h, p in nodes], socket_timeout=seconds)
    else:
        client = redis.asyncio.Redis.from_url(conn, socket_timeout=seconds)
    return AsyncRedisStore(client, prefix=prefix, expiry_grace_ms=int(grace)), client.aclose
