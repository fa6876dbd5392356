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


def open_mongodb(
    url: str, collection: str, prefix: str, form: str = "sync", timeout: str = "10000"
) -> tuple[Any, Callable[[], Any]]:
    """A MongoDBStore (``form`` sync) or AsyncMongoDBStore on ``halt_test.<collection>``, with a client of its own.
    ``timeout`` (ms) is the sync store's bound on a check (the default suits a loaded FerretDB); an asyncio store is
    bounded by the limiter."""
    from tests.stores.docstores import MONGO_OPTIONS

    if form == "sync":
        from halt.stores.mongodb import MongoDBStore

        store: Any = MongoDBStore(
            collection,
            connection_string=url,
            database="halt_test",
            prefix=prefix,
            client_options=MONGO_OPTIONS,
            timeout=float(timeout),
        )
        return store, store.close
    from halt.stores.mongodb import AsyncMongoDBStore

    astore = AsyncMongoDBStore(
        collection, connection_string=url, database="halt_test", prefix=prefix, client_options=MONGO_OPTIONS
    )
    return astore, astore.aclose


def open_dynamodb(
    url: str, table: str, prefix: str, timeout: str = "10000", create: bool = False
) -> tuple[Any, Callable[[], Any]]:
    """A DynamoDBStore on moto's ``table`` (made first with ``create``), with a client of its own whose connect and
    read timeouts are ``timeout`` ms."""
    from halt.stores.dynamodb import DynamoDBStore, create_dynamo_table
    from tests.stores.docstores import dynamo_client

    client = dynamo_client(url, float(timeout))
    if create:
        create_dynamo_table(dynamo_client(url), table_name=table)
    return DynamoDBStore(table, client=client, prefix=prefix), client.close
