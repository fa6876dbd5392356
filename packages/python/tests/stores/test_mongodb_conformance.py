"""The store-conformance suite on MongoDBStore (threads) and AsyncMongoDBStore (asyncio), on FerretDB v1.24.2 and, when
HALT_TEST_MONGODB_URL names one, a real MongoDB. FerretDB does not isolate a conditional update (docs/stores.md): there
the concurrency test asserts no errors and no under-admission; on MongoDB, exactly the limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timezone
from typing import Any, Optional

import pymongo
import pytest

from halt.stores.mongodb import AsyncMongoDBStore, MongoDBStore
from tests.stores.conformance import *  # noqa: F403  (the test functions)
from tests.stores.conformance import Inspected, StoreHarness, maybe
from tests.stores.docstores import MONGO_OPTIONS, mongo_servers, need, pause, service_pid

#: What bounds a check while the server is frozen: the limiter's timeout (asyncio), the store's (sync).
STALL_MS = 500
PARAMS = [(label, url, real, form) for label, url, real in mongo_servers() for form in ("sync", "asyncio")]


def _inspected(doc: Optional[dict[str, Any]]) -> Optional[Inspected]:
    if doc is None:
        return None
    x = doc["x"].replace(tzinfo=timezone.utc)
    return Inspected(state=list(doc["s"]), ttl_ms=x.timestamp() * 1000 - time.time() * 1000)


@pytest.fixture(scope="module", params=PARAMS, ids=[f"{p[0]} {p[3]}" for p in PARAMS])
def harness(request: Any) -> Iterator[StoreHarness]:
    label, given, real, form = request.param
    url = need(given, "HALT_TEST_FERRETDB_URL")
    collection = f"halt_conf_{uuid.uuid4().hex[:8]}"
    shared: Any = pymongo.MongoClient(url, **MONGO_OPTIONS)
    stall = None if real else (lambda _store, ms: pause(service_pid("mongodb"), ms))
    common: dict[str, Any] = {
        "expire": lambda store, at: store.cleanup_expired(at),
        "atomic": real,
        "stall": stall,
        "stall_timeout_ms": STALL_MS,
        "worker": ("tests.stores.factories:open_mongodb", [url, collection, "halt:", form]),
    }
    if form == "sync":
        yield StoreHarness(
            name=f"MongoDBStore on {label}",
            create=lambda: MongoDBStore(collection, client=shared, database="halt_test", timeout=STALL_MS),
            inspect=lambda store, ns, id: _inspected(store.collection.find_one({"_id": store.key(ns, id)})),
            dispose=lambda store: store.close(),
            **common,
        )
    else:

        async def create() -> AsyncMongoDBStore:
            # A client per store: an asyncio client belongs to the event loop of the test that made it.
            return AsyncMongoDBStore(
                collection, client=pymongo.AsyncMongoClient(url, **MONGO_OPTIONS), database="halt_test"
            )

        async def inspect(store: AsyncMongoDBStore, ns: str, id: str) -> Optional[Inspected]:
            return _inspected(await store.collection.find_one({"_id": store.key(ns, id)}))

        async def dispose(store: AsyncMongoDBStore) -> None:
            await store.aclose()
            await maybe(store.collection.database.client.close())

        yield StoreHarness(
            name=f"AsyncMongoDBStore on {label}", create=create, inspect=inspect, dispose=dispose, **common
        )
    shared["halt_test"][collection].drop()
    shared.close()
