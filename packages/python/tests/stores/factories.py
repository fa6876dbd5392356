"""Stores on new connections, for the test modules and for the worker processes of the conformance suite's
concurrency test (tests/stores/worker.py calls ``open_<kind>(*args)`` for a ``(store, close)`` pair)."""

from __future__ import annotations

from typing import Any, Callable


def open_postgres(url: str, table: str, prefix: str, form: str = "sync", timeout: str = "2000") -> Any:
    """A PostgresStore (``form`` sync) or AsyncPostgresStore on ``table``, without the cleanup timer."""
    if form == "sync":
        from halt.stores.postgres import PostgresStore

        store: Any = PostgresStore(url, table=table, prefix=prefix, cleanup_interval=0, timeout=float(timeout))
        return store, store.close
    from halt.stores.postgres import AsyncPostgresStore

    store = AsyncPostgresStore(url, table=table, prefix=prefix, cleanup_interval=0, timeout=float(timeout))
    return store, store.aclose


def open_memcached(url: str, prefix: str, form: str = "sync", timeout: str = "2000") -> tuple[Any, Callable[[], Any]]:
    """A MemcachedStore (``form`` sync) or AsyncMemcachedStore on the server ``host:port``."""
    host, _, port = url.rpartition(":")
    seconds = float(timeout) / 1000
    if form == "sync":
        from halt.stores.memcached import MemcachedStore
        from pymemcache.client.base import PooledClient

        client = PooledClient((host, int(port)), connect_timeout=seconds, timeout=seconds, max_pool_size=64)
        return MemcachedStore(client=client, prefix=prefix), client.close
    import aiomcache
    from halt.stores.memcached import AsyncMemcachedStore

    aclient = aiomcache.Client(host, int(port), pool_size=16)
    return AsyncMemcachedStore(client=aclient, prefix=prefix), aclient.close


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
