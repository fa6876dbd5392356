"""MongoDBStore and AsyncMongoDBStore: one document per key, updated by the compare-and-set loop of halt.stores.cas
on a random version field. The documents are the TypeScript store's, field for field and BSON type for type, so a
Node and a Python service share one collection."""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Union

from halt.core.errors import HaltConfigError
from halt.core.policy import Rule
from halt.core.types import Outcome
from halt.stores.cas import (
    AsyncCasStore,
    CasStore,
    Next,
    Versioned,
    Written,
    bounded_key,
    check_cleanup_interval,
    check_prefix,
    check_timeout,
    new_version,
    start_cleanup_task,
    start_cleanup_thread,
)
from halt.stores.redis.keys import escape_key_part

_PROJECTION = {"s": 1, "v": 1, "e": 1}
_REGEX_SPECIAL = re.compile(r"[\\^$.*+?()\[\]{}|/-]")
_INT32 = 2**31
#: What a client the store makes for itself gets, unless ``client_options`` says otherwise: notice a restarted
#: server soon (the store's ``timeout`` bounds each check, server selection included).
CLIENT_DEFAULTS: Mapping[str, Any] = {"serverSelectionTimeoutMS": 2000, "heartbeatFrequencyMS": 1000}


def bson_number(x: float) -> Union[int, float]:
    """``x`` as the Node driver writes a JavaScript number: an int32 when it is whole and fits, else a double. The
    documents of both SDKs then hold the same BSON types (a whole number beyond int32, a version or an epoch ms, is
    a double, exact below 2^53)."""
    if isinstance(x, int):
        return x if -_INT32 <= x < _INT32 else float(x)
    return int(x) if x.is_integer() and -_INT32 <= x < _INT32 else x


def _record(doc: Optional[Mapping[str, Any]]) -> Optional[Versioned[float]]:
    if doc is None:
        return None
    # As BSON has them (int32 or double: equal values compare equal, so a version read back matches).
    return Versioned(list(doc["s"]), doc["v"], doc["e"])


def _not_implemented(error: BaseException) -> bool:
    """Whether the server turned the TTL index down as not implemented (FerretDB v1)."""
    details = getattr(error, "details", None) or {}
    return details.get("codeName") == "NotImplemented" or "not implemented" in str(error).lower()


#: The TTL date of a state kept longer than Python's datetime reaches (year 9999): in effect never deleted.
_LAST_DATE = datetime(9999, 12, 31, tzinfo=timezone.utc)
_MAX_TTL_MS = (_LAST_DATE - datetime(2100, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1000


class _MongoBase:
    """What the sync and asyncio stores share: options, keys, documents, filters."""

    prefix: str
    #: False once the server turned the TTL index down (FerretDB v1): the store then deletes expired documents itself.
    ttl_index: Optional[bool]

    def _configure(
        self,
        name: str,
        collection: Any,
        client: Any,
        connection_string: Optional[str],
        database: Optional[str],
        client_options: Optional[Mapping[str, Any]],
        prefix: str,
        create_indexes: bool,
        cleanup_interval: float,
        timeout: float,
        asynchronous: bool,
    ) -> None:
        import pymongo

        fix = (
            f"Fix: {name}(connection_string='mongodb://localhost:27017', database='app'), or "
            f"{name}(collection=client['app']['halt_state'])."
        )
        if not isinstance(collection, str):
            if connection_string is not None or client is not None:
                raise HaltConfigError(
                    "HALT_INVALID_MONGODB_COLLECTION",
                    f"{name}: give a collection object, or a client (or connection_string) with database, not both. "
                    + fix,
                )
            if not callable(getattr(collection, "update_one", None)) or not callable(
                getattr(collection, "find_one", None)
            ):
                raise HaltConfigError(
                    "HALT_INVALID_MONGODB_COLLECTION",
                    f"{name} needs a collection of pymongo, got {type(collection).__name__}. " + fix,
                )
            self._owned: Any = None
        else:
            if (client is None) == (connection_string is None) or not isinstance(database, str) or database == "":
                raise HaltConfigError(
                    "HALT_INVALID_MONGODB_COLLECTION",
                    f"{name} needs a collection object, or one of client and connection_string together with "
                    "database (the collection's name defaults to 'halt_state'). " + fix,
                )
            if collection == "":
                raise HaltConfigError("HALT_INVALID_MONGODB_COLLECTION", f"{name}: collection must not be ''. " + fix)
            self._owned = None
            if connection_string is not None:
                if not isinstance(connection_string, str):
                    raise HaltConfigError(
                        "HALT_INVALID_MONGODB_COLLECTION",
                        f"{name}: connection_string must be a string, got {type(connection_string).__name__}. " + fix,
                    )
                make = pymongo.AsyncMongoClient if asynchronous else pymongo.MongoClient
                client = make(connection_string, **{**CLIENT_DEFAULTS, **(client_options or {})})
                self._owned = client
            collection = client[database][collection]
        if _is_async_collection(collection) != asynchronous:
            other = "MongoDBStore" if asynchronous else "AsyncMongoDBStore"
            raise HaltConfigError(
                "HALT_INVALID_MONGODB_COLLECTION",
                f"{name} takes a {'pymongo.AsyncMongoClient' if asynchronous else 'pymongo.MongoClient'} collection, "
                f"got {type(collection).__module__}.{type(collection).__name__}. Fix: {other}(...).",
            )
        self._cleanup_every = check_cleanup_interval(
            name, cleanup_interval, "omit it (0: the TTL index deletes expired documents)"
        )
        self.collection = collection
        self.timeout = check_timeout(name, timeout)
        #: ``with self._bounded():`` bounds an operation by ``timeout`` (pymongo's client-side operation timeout,
        #: which applies to a client given as well as to one the store made, and nests under an outer one).
        self._bounded = functools.partial(pymongo.timeout, self.timeout / 1000)
        self.prefix = check_prefix(prefix, name)
        self._create_indexes = bool(create_indexes)
        self._prepared = False
        self.ttl_index = None

    def key(self, ns: str, id: str) -> str:
        """The document ``_id`` of ``id`` under ``ns`` (spec/KEYS.md; hashed beyond 1024 bytes)."""
        return bounded_key(self.prefix, ns, id)

    def _matching(self, ns: Optional[str]) -> dict[str, Any]:
        """Every ``_id`` of ``ns`` (or under the prefix): an anchored regular expression, answered from the
        ``_id`` index."""
        head = self.prefix if ns is None else f"{self.prefix}{escape_key_part(ns)}:{{"
        return {"_id": {"$regex": "^" + _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), head)}}

    @staticmethod
    def _fields(nxt: Next, version: int) -> dict[str, Any]:
        """The ``$set`` of a write: the state, a new version, the expiry (ms) and the TTL field (a UTC date: this
        process's clock plus the TTL, as the TypeScript store writes it)."""
        now = datetime.now(timezone.utc)
        x = now + timedelta(milliseconds=nxt.ttl_ms) if nxt.ttl_ms < _MAX_TTL_MS else _LAST_DATE
        return {
            "$set": {
                "s": [bson_number(v) for v in nxt.state],
                "v": bson_number(version),
                "e": bson_number(nxt.expires_at),
                "x": x,
            }
        }

    @staticmethod
    def _insert_filter(key: str, nxt: Next) -> dict[str, Any]:
        """A new key, or one whose document has expired: a live document makes the filter miss and the upsert
        collide with its ``_id`` (E11000): another writer came first."""
        return {"_id": key, "e": {"$lte": bson_number(nxt.now)}}


class MongoDBStore(_MongoBase, CasStore[float]):
    """A store in MongoDB for synchronous code (pymongo's ``MongoClient``): one document per key. Every check
    reads the document, runs the algorithm in this process (the spec's pure function), and writes it back only if
    its version is still the one read (a single-document update, atomic in MongoDB); a conflict, or a duplicate key
    (E11000) when two checks create a key at once, is retried. Idle documents are deleted by a TTL index on ``x``;
    an expired document that is still there decides as a missing one. The documents are those of the TypeScript
    ``MongoDBStore``: a Node and a Python service share one collection and one limit.

    Give it a collection, or a client or a connection string with a database (``collection`` is then the name,
    default ``halt_state``; a client made from ``connection_string`` is the store's: ``close()`` closes it).
    ``timeout`` (ms, default 500) bounds each check, whatever the client: one ``pymongo.timeout()`` deadline for
    its operations. A synchronous call cannot be abandoned from outside, so this is what keeps a check from waiting
    on a server that is down; then the limiter's failure policy answers. While no server can be selected, pymongo
    looks at that deadline only every 500 ms, so a check can take up to ``timeout`` + 500 ms then.

    Example::

        from halt import RateLimiter
        from halt.stores.mongodb import MongoDBStore

        store = MongoDBStore(connection_string="mongodb://localhost:27017", database="app")
        limiter = RateLimiter(store=store, policy={"name": "api", "limit": 100, "window": "1m"})
        limiter.check("user:42")
    """

    # A lost update_one says only "no match": guess the record (skip the read) while guesses mostly hit.
    speculation = "adaptive"

    def __init__(
        self,
        collection: Any = "halt_state",
        *,
        connection_string: Optional[str] = None,
        database: Optional[str] = None,
        client: Any = None,
        client_options: Optional[Mapping[str, Any]] = None,
        prefix: str = "halt:",
        create_indexes: bool = True,
        cleanup_interval: float = 0,
        max_attempts: int = 100,
        expiry_grace_ms: int = 0,
        timeout: float = 500,
    ) -> None:
        super().__init__("MongoDBStore", max_attempts, expiry_grace_ms)
        self._configure(
            "MongoDBStore",
            collection,
            client,
            connection_string,
            database,
            client_options,
            prefix,
            create_indexes,
            cleanup_interval,
            timeout,
            asynchronous=False,
        )
        self._setup_lock = threading.Lock()
        self._stop: Optional[threading.Event] = None
        if self._cleanup_every > 0:
            self._start_cleanup(self._cleanup_every)

    def close(self) -> None:
        """Stop the cleanup thread, if any, and close the client if the store made it."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if self._owned is not None:
            self._owned.close()

    def consume(self, ns: str, id: str, rule: Rule, now: float, cost: float) -> Outcome:
        # One deadline for the whole check (a wait for the key's group ahead included; the read and the writes share
        # what is left), not ``timeout`` per operation.
        with self._bounded():
            return super().consume(ns, id, rule, now, cost)

    def peek(self, ns: str, id: str, rule: Rule, now: float) -> Outcome:
        with self._bounded():
            return super().peek(ns, id, rule, now)

    def cleanup_expired(self, now: Optional[float] = None) -> int:
        """Delete the documents whose state expired at ``now`` (default: the latest time this store has seen,
        less ``expiry_grace_ms``). MongoDB's TTL monitor does this by itself every 60 s; on a server without TTL
        indexes (FerretDB v1) the store calls it every ``cleanup_interval``. Returns how many were deleted."""
        at = self.last_now - self.expiry_grace_ms if now is None else now
        if not at > 0:
            return 0
        return int(self.collection.delete_many({"e": {"$lte": bson_number(at)}}).deleted_count)

    def size(self, ns: Optional[str] = None) -> int:
        """Documents held (of a namespace, or under the prefix)."""
        return int(self.collection.count_documents(self._matching(ns)))

    def _read(self, key: str, ns: str) -> Optional[Versioned[float]]:
        if not self._prepared:
            self._ready()
        with self._bounded():
            return _record(self.collection.find_one({"_id": key}, _PROJECTION))

    def _write(self, key: str, ns: str, nxt: Next, prev: Optional[Versioned[float]]) -> Written[float]:
        from pymongo.errors import DuplicateKeyError

        if not self._prepared:
            self._ready()  # a guessed write may come before any read
        version = new_version()
        update = self._fields(nxt, version)
        with self._bounded():
            if prev is not None:
                r = self.collection.update_one({"_id": key, "v": bson_number(prev.version)}, update)
                return Written.won(version) if r.matched_count == 1 else Written.lost()
            try:
                self.collection.update_one(self._insert_filter(key, nxt), update, upsert=True)
            except DuplicateKeyError:
                return Written.lost()
            return Written.won(version)

    def _remove(self, key: str, ns: str) -> None:
        with self._bounded():
            self.collection.delete_one({"_id": key})

    def _remove_all(self, ns: Optional[str]) -> None:
        self.collection.delete_many(self._matching(ns))

    def _ready(self) -> None:
        """The TTL index, once (again after a failure)."""
        from pymongo.errors import OperationFailure

        with self._setup_lock:
            if self._prepared:
                return
            if self._create_indexes:
                try:
                    with self._bounded():
                        self.collection.create_index([("x", 1)], name="halt_ttl", expireAfterSeconds=0)
                    self.ttl_index = True
                except OperationFailure as e:
                    if not _not_implemented(e):
                        raise
                    # No TTL indexes on this server (FerretDB v1): delete expired documents from here instead.
                    self.ttl_index = False
                    self._start_cleanup(60_000)
            self._prepared = True

    def _start_cleanup(self, every_ms: float) -> None:
        if self._stop is None:
            self._stop = threading.Event()
            start_cleanup_thread(self, every_ms / 1000, self._stop, "halt-mongodb-cleanup")


class AsyncMongoDBStore(_MongoBase, AsyncCasStore[float]):
    """MongoDBStore for asyncio code, on pymongo's ``AsyncMongoClient``: every method is a coroutine, and the
    limiter's ``acheck()`` awaits it under its ``timeout`` (the store's own ``timeout``, default 5000 ms, is only a
    backstop). The same documents as ``MongoDBStore`` (and the TypeScript store).

    Example::

        from halt.stores.mongodb import AsyncMongoDBStore

        store = AsyncMongoDBStore(connection_string="mongodb://localhost:27017", database="app")
        limiter = RateLimiter(store=store, policy=presets.PUBLIC_API, timeout=200)
        d = await limiter.acheck("user:42")
    """

    speculation = "adaptive"

    def __init__(
        self,
        collection: Any = "halt_state",
        *,
        connection_string: Optional[str] = None,
        database: Optional[str] = None,
        client: Any = None,
        client_options: Optional[Mapping[str, Any]] = None,
        prefix: str = "halt:",
        create_indexes: bool = True,
        cleanup_interval: float = 0,
        max_attempts: int = 100,
        expiry_grace_ms: int = 0,
        timeout: float = 5000,
    ) -> None:
        super().__init__("AsyncMongoDBStore", max_attempts, expiry_grace_ms)
        self._configure(
            "AsyncMongoDBStore",
            collection,
            client,
            connection_string,
            database,
            client_options,
            prefix,
            create_indexes,
            cleanup_interval,
            timeout,
            asynchronous=True,
        )
        self._setup: Optional[asyncio.Future[None]] = None
        self._task: Optional[asyncio.Task[None]] = None

    async def aclose(self) -> None:
        """Stop the cleanup task, if any, and close the client if the store made it."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._owned is not None:
            await self._owned.close()

    async def cleanup_expired(self, now: Optional[float] = None) -> int:
        """MongoDBStore.cleanup_expired(), awaited."""
        at = self.last_now - self.expiry_grace_ms if now is None else now
        if not at > 0:
            return 0
        return int((await self.collection.delete_many({"e": {"$lte": bson_number(at)}})).deleted_count)

    async def size(self, ns: Optional[str] = None) -> int:
        return int(await self.collection.count_documents(self._matching(ns)))

    async def _read(self, key: str, ns: str) -> Optional[Versioned[float]]:
        if not self._prepared:
            await self._ready()
        with self._bounded():
            return _record(await self.collection.find_one({"_id": key}, _PROJECTION))

    async def _write(self, key: str, ns: str, nxt: Next, prev: Optional[Versioned[float]]) -> Written[float]:
        from pymongo.errors import DuplicateKeyError

        if not self._prepared:
            await self._ready()
        version = new_version()
        update = self._fields(nxt, version)
        with self._bounded():
            if prev is not None:
                r = await self.collection.update_one({"_id": key, "v": bson_number(prev.version)}, update)
                return Written.won(version) if r.matched_count == 1 else Written.lost()
            try:
                await self.collection.update_one(self._insert_filter(key, nxt), update, upsert=True)
            except DuplicateKeyError:
                return Written.lost()
            return Written.won(version)

    async def _remove(self, key: str, ns: str) -> None:
        with self._bounded():
            await self.collection.delete_one({"_id": key})

    async def _remove_all(self, ns: Optional[str]) -> None:
        await self.collection.delete_many(self._matching(ns))

    async def _ready(self) -> None:
        """The TTL index and the cleanup task, once (again after a failure); concurrent first checks wait for the
        same attempt."""
        if self._setup is None:
            self._setup = asyncio.ensure_future(self._prepare())
        setup = self._setup
        try:
            await asyncio.shield(setup)
        except BaseException:
            if self._setup is setup and setup.done():
                self._setup = None
            raise

    async def _prepare(self) -> None:
        from pymongo.errors import OperationFailure

        every = self._cleanup_every
        if self._create_indexes:
            try:
                with self._bounded():
                    await self.collection.create_index([("x", 1)], name="halt_ttl", expireAfterSeconds=0)
                self.ttl_index = True
            except OperationFailure as e:
                if not _not_implemented(e):
                    raise
                # No TTL indexes on this server (FerretDB v1): delete expired documents from here instead.
                self.ttl_index = False
                every = every or 60_000
        if every > 0 and self._task is None:
            # A task of the event loop of the first check (a timer needs a running loop).
            self._task = start_cleanup_task(self, every / 1000)
        self._prepared = True


def _is_async_collection(collection: Any) -> bool:
    try:
        from pymongo.asynchronous.collection import AsyncCollection
    except ImportError:  # pragma: no cover - pymongo < 4.9 has no asyncio API
        return False
    return isinstance(collection, AsyncCollection)


__all__ = ["CLIENT_DEFAULTS", "AsyncMongoDBStore", "MongoDBStore", "bson_number"]
