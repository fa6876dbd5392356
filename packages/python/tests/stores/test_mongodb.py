"""MongoDBStore and AsyncMongoDBStore on FerretDB v1.24.2 (always) and a real MongoDB (when HALT_TEST_MONGODB_URL
names one): what the server guarantees, and the store's own: the TypeScript store's documents (the very BSON types
Node writes), the TTL index or its fallback, E11000 races, options. The conformance suite runs in
test_docstores_conformance.py."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pymongo
import pytest

from halt import HaltConfigError, Policy
from halt.core.policy import compile_policy
from halt.core.types import Outcome
from halt.stores.mongodb import AsyncMongoDBStore, MongoDBStore, bson_number
from tests.stores.docstores import MONGO_OPTIONS, at_once, mongo_servers, need

T0 = 1_700_000_000_000
SERVERS = mongo_servers()
IDS = [s[0] for s in SERVERS]
HAMMER = Path(__file__).resolve().parents[1] / "cross_language" / "hammer_stores.mjs"


@pytest.fixture(params=SERVERS, ids=IDS)
def server(request: Any) -> tuple[str, bool]:
    _, url, real = request.param
    return need(url, "HALT_TEST_FERRETDB_URL"), real


@pytest.fixture
def collection(server: tuple[str, bool]) -> Iterator[Any]:
    with pymongo.MongoClient(server[0], **MONGO_OPTIONS) as client:
        coll = client["halt_test"][f"halt_{uuid.uuid4().hex[:8]}"]
        yield coll
        coll.drop()


@pytest.fixture
async def acollection(server: tuple[str, bool]) -> AsyncIterator[Any]:
    client: Any = pymongo.AsyncMongoClient(server[0], **MONGO_OPTIONS)
    coll = client["halt_test"][f"halt_{uuid.uuid4().hex[:8]}"]
    yield coll
    await coll.drop()
    await client.close()


def _wins_per_round(counts: list[int], label: str, real: bool) -> None:
    print(f"{label}: successful conditional updates per round of 20: {' '.join(map(str, counts))}")
    assert min(counts) >= 1
    if real:
        assert max(counts) == 1


async def test_conditional_updates_isolated_on_mongodb_not_always_on_ferretdb(
    acollection: Any, server: tuple[str, bool]
) -> None:
    """20 concurrent update_one on one version, 50 rounds: MongoDB lets exactly one through; FerretDB v1 applies
    an update as a read and a write, and may let several through (why its concurrency test cannot assert exactness)."""
    wins = []
    for round_ in range(50):
        _id = f"race-{round_}"
        await acollection.insert_one({"_id": _id, "v": 0})
        results = await asyncio.gather(
            *(acollection.update_one({"_id": _id, "v": 0}, {"$set": {"v": i + 1}}) for i in range(20))
        )
        wins.append(sum(r.matched_count for r in results))
    _wins_per_round(wins, "MongoDB" if server[1] else "FerretDB", server[1])


def test_stores_the_typescript_document_state_version_expiry_ttl_field(collection: Any) -> None:
    store = MongoDBStore(collection)
    rule = compile_policy(Policy(name="layout", limit=10, window=60))
    now = int(time.time() * 1000)
    store.consume(rule.ns, "user:42", rule, now, 3)
    doc = collection.find_one({"_id": "halt:layout:tb:{user:42}"})
    assert doc is not None
    assert set(doc) == {"_id", "s", "v", "e", "x"}
    assert doc["s"] == [0, 7, now]
    # The BSON types the Node driver writes: int32 for small whole numbers, doubles beyond (epoch ms, versions).
    assert [type(x) for x in doc["s"]] == [int, int, float]
    assert doc["e"] == now + 18_000 and type(doc["e"]) is float
    assert type(doc["v"]) is float and doc["v"].is_integer() and 0 <= doc["v"] < 2**53
    x = doc["x"].replace(tzinfo=timezone.utc) if doc["x"].tzinfo is None else doc["x"]
    assert isinstance(x, datetime)
    late = x.timestamp() * 1000 - (now + 18_000)
    assert 0 <= late < 2_000


def test_node_writes_the_same_document_field_for_field_and_type_for_type(
    collection: Any, server: tuple[str, bool]
) -> None:
    """The built TypeScript store writes one key, the Python store another: the same fields, the same BSON types."""
    import shutil

    if shutil.which("node") is None or not (HAMMER.parents[3] / "typescript" / "dist" / "index.js").exists():
        pytest.skip("node or packages/typescript/dist is missing")
    node = subprocess.Popen(
        ["node", str(HAMMER), "mongodb", server[0], collection.name, "halt:", "token_bucket", "10", "60", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HAMMER.parent,
    )
    out, _ = node.communicate("go\n", timeout=60)
    assert out.split()[-2:] == ["1", "0"]  # one admitted, no errors
    store = MongoDBStore(collection)
    rule = compile_policy(Policy(name="shared", limit=10, window=60))
    store.consume(rule.ns, "py", rule, int(time.time() * 1000), 1)
    by_node = collection.find_one({"_id": "halt:shared:tb:{hot}"})
    by_python = collection.find_one({"_id": "halt:shared:tb:{py}"})
    assert by_node is not None and by_python is not None
    types = lambda d: {k: (type(v), [type(x) for x in v] if isinstance(v, list) else None) for k, v in d.items()}  # noqa: E731
    assert types(by_python) == types(by_node)


def _cleaners() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "halt-mongodb-cleanup")


def test_ttl_index_on_mongodb_and_the_cleanup_fallback_on_ferretdb(collection: Any, server: tuple[str, bool]) -> None:
    before = _cleaners()
    store = MongoDBStore(collection)
    rule = compile_policy(Policy(name="ttl", limit=1, window=60))
    store.consume(rule.ns, "k", rule, int(time.time() * 1000), 1)
    assert store.ttl_index is server[1]
    if server[1]:
        index = collection.index_information()["halt_ttl"]
        assert index["key"] == [("x", 1)] and index["expireAfterSeconds"] == 0
        assert _cleaners() == before
    else:
        assert _cleaners() == before + 1  # a thread deletes expired documents every 60 s
    store.close()
    for _ in range(100):
        if _cleaners() == before:
            break
        time.sleep(0.01)
    assert _cleaners() == before


def test_cleanup_expired_deletes_only_what_expired(collection: Any) -> None:
    store = MongoDBStore(collection, create_indexes=False)
    rule = compile_policy(Policy(name="gc", limit=2, window=1))
    store.consume(rule.ns, "short", rule, T0, 2)  # fresh again at T0 + 1000
    store.consume(rule.ns, "long", rule, T0 + 5_000, 1)
    assert store.ttl_index is None  # not asked to create it
    assert store.cleanup_expired(T0 + 1_000) == 1
    assert store.size(rule.ns) == 1
    assert store.cleanup_expired() == 0  # default: the latest time seen (T0 + 5000): "long" lasts until T0 + 5500
    assert store.cleanup_expired(T0 + 6_000) == 1


def test_two_processes_creating_one_key_one_inserts_the_other_meets_e11000_and_retries(
    server: tuple[str, bool], collection: Any
) -> None:
    rule = compile_policy(Policy(name="dup", limit=100, window=60))
    stores = [MongoDBStore(collection.name, client=collection.database.client, database="halt_test") for _ in range(4)]
    for round_ in range(10):
        key = f"new-{round_}"
        outs = at_once([functools.partial(s.consume, rule.ns, key, rule, T0, 1) for s in stores])
        assert all(isinstance(o, Outcome) and o.allowed for o in outs), outs
        if server[1]:
            assert sorted((o.remaining for o in outs), reverse=True) == [99, 98, 97, 96]  # type: ignore[union-attr]
    assert sum(s.counters.conflicts for s in stores) > 0


async def test_async_store_the_same_documents_and_e11000_retries(acollection: Any, server: tuple[str, bool]) -> None:
    rule = compile_policy(Policy(name="dup", limit=100, window=60))
    stores = [AsyncMongoDBStore(acollection) for _ in range(4)]
    for round_ in range(10):
        outs = await asyncio.gather(*(s.consume(rule.ns, f"new-{round_}", rule, T0, 1) for s in stores))
        assert all(o.allowed for o in outs)
        if server[1]:
            assert sorted((o.remaining for o in outs), reverse=True) == [99, 98, 97, 96]
    assert sum(s.counters.conflicts for s in stores) > 0
    doc = await acollection.find_one({"_id": "halt:dup:tb:{new-0}"})
    assert set(doc) == {"_id", "s", "v", "e", "x"} and [type(x) for x in doc["s"]] == [int, int, float]
    assert stores[0].ttl_index is server[1]
    for s in stores:
        await s.aclose()


async def test_async_store_cleans_up_from_a_task_when_asked(acollection: Any) -> None:
    store = AsyncMongoDBStore(acollection, create_indexes=False, cleanup_interval=20)
    rule = compile_policy(Policy(name="gc", limit=2, window=1))
    await store.consume(rule.ns, "short", rule, T0, 2)
    await store.consume(rule.ns, "later", rule, T0 + 1_000, 1)  # the store has now seen T0 + 1000
    for _ in range(100):
        if await store.size(rule.ns) == 1:
            break
        await asyncio.sleep(0.02)
    assert await store.size(rule.ns) == 1
    assert await acollection.find_one({"_id": store.key(rule.ns, "short")}) is None
    await store.aclose()
    await store.collection.insert_one({"_id": store.key(rule.ns, "gone"), "e": T0})
    await asyncio.sleep(0.1)
    assert await acollection.find_one({"_id": store.key(rule.ns, "gone")}) is not None  # no cleanup after aclose()


def test_a_connection_string_and_database_make_an_owned_client_with_fail_fast_defaults(
    server: tuple[str, bool],
) -> None:
    store = MongoDBStore(connection_string=server[0], database="halt_test")
    assert store.collection.name == "halt_state" and store.collection.database.name == "halt_test"
    assert store._owned is not None and store.timeout == 500
    assert store._owned.options.server_selection_timeout == 2  # CLIENT_DEFAULTS
    store.close()


def test_bson_numbers_as_the_node_driver_writes_javascript_numbers() -> None:
    assert [bson_number(x) for x in (0, 7, 7.0, 2**31 - 1, 2**31, -(2**31), 2.5, T0, float(T0))] == [
        0,
        7,
        7,
        2**31 - 1,
        float(2**31),
        -(2**31),
        2.5,
        float(T0),
        float(T0),
    ]
    assert [type(bson_number(x)) for x in (7.0, 2**31)] == [int, float]


def test_options_are_checked(collection: Any) -> None:
    def code(**kwargs: Any) -> str:
        with pytest.raises(HaltConfigError) as e:
            MongoDBStore(**kwargs)
        return e.value.code

    assert code() == "HALT_INVALID_MONGODB_COLLECTION"  # neither a collection nor a server
    assert code(collection=object()) == "HALT_INVALID_MONGODB_COLLECTION"
    assert code(collection=collection, connection_string="mongodb://x") == "HALT_INVALID_MONGODB_COLLECTION"
    assert code(connection_string="mongodb://x") == "HALT_INVALID_MONGODB_COLLECTION"  # no database
    assert code(collection="", client=collection.database.client, database="d") == "HALT_INVALID_MONGODB_COLLECTION"
    assert code(collection=collection, cleanup_interval=-1) == "HALT_INVALID_CLEANUP_INTERVAL"
    assert code(collection=collection, cleanup_interval=float("inf")) == "HALT_INVALID_CLEANUP_INTERVAL"
    assert code(collection=collection, prefix="a{b") == "HALT_INVALID_STORE_PREFIX"
    assert code(collection=collection, max_attempts=0) == "HALT_INVALID_CAS_ATTEMPTS"
    assert code(collection=collection, expiry_grace_ms=-1) == "HALT_INVALID_EXPIRY_GRACE"
    assert code(collection=collection, timeout=0) == "HALT_INVALID_TIMEOUT"
    with pytest.raises(HaltConfigError) as e:
        AsyncMongoDBStore(collection)  # a sync collection for the asyncio store
    assert e.value.code == "HALT_INVALID_MONGODB_COLLECTION" and "MongoDBStore(" in str(e.value)
