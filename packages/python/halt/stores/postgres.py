"""PostgresStore and AsyncPostgresStore (extra ``postgres``): one row per key, updated by the compare-and-set loop of
halt/stores/cas.py in single statements (the asyncio store, under load: one statement for the writes of many keys), on
psycopg 3's connection pools. The table, its columns and the statements are the TypeScript store's
(packages/typescript/src/stores/postgres), so Node and Python services share one table."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import socket
import struct
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Union

from halt.core.errors import HaltConfigError
from halt.stores.cas import (
    Apply,
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

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
CLEANUP_BATCH = 10_000
DEFAULT_BATCH = 32
MAX_BATCH = 1000


class _Deadlines:
    """A deadline for each statement of the sync store: psycopg's blocking wait has none, so a server frozen on a host
    that still acknowledges TCP (SIGSTOP, a stuck process) would hold a check forever. A daemon thread (started on
    first use, one per store) shuts down the socket of a connection whose statement is past its deadline: the wait
    returns with an error, the check fails into the limiter's ``on_store_error``, and the pool replaces the connection.
    The deadline is the store's ``timeout`` plus a quarter (``statement_timeout`` answers first on a running server)."""

    def __init__(self, timeout_ms: float, stop: threading.Event) -> None:
        self.slack = timeout_ms / 1000 * 1.25
        self.tick = max(0.01, timeout_ms / 10_000)
        self._stop = stop
        self._lock = threading.Lock()
        self._live: dict[int, tuple[float, int]] = {}
        self._ids = itertools.count()
        self._thread: Optional[threading.Thread] = None

    @contextmanager
    def bound(self, conn: Any, statements: int = 1) -> Iterator[None]:
        token = next(self._ids)
        # A duplicate of the connection's socket: if libpq closes its own (a broken connection) and the number is
        # reused meanwhile, shutting this one down still reaches the old socket only.
        fd = os.dup(conn.pgconn.socket)
        with self._lock:
            self._live[token] = (time.monotonic() + self.slack * statements, fd)
            if self._thread is None or not self._thread.is_alive():  # none yet, stopped idle, or lost in a fork
                self._thread = threading.Thread(target=self._watch, name="halt-postgres-deadlines", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                fired = self._live.pop(token, None) is None
            os.close(fd)
            if fired:  # shut down (perhaps just as its statement ended): closed, the pool replaces it
                conn.close()

    def _watch(self) -> None:
        idle = 0
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            with self._lock:  # held while shutting down: a statement that ends meanwhile cannot hand its fd back
                for token, (deadline, fd) in list(self._live.items()):
                    if now >= deadline:
                        del self._live[token]
                        _shutdown(fd)
                idle = 0 if self._live else idle + 1
                if idle >= 100:  # nothing to watch for 100 ticks: stop (the next statement starts a watcher again)
                    self._thread = None
                    return


def _shutdown(fd: int) -> None:
    try:
        s = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)  # one more duplicate, closed here: bound() closes fd
    except OSError:
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.close()


def quote_table(table: object) -> str:
    """``"schema"."table"`` from ``table`` or ``schema.table``; raises on anything else (no SQL injection)."""
    parts = table.split(".") if isinstance(table, str) else []
    if not 1 <= len(parts) <= 2 or not all(_IDENT.match(p) for p in parts):
        raise HaltConfigError(
            "HALT_INVALID_POSTGRES_TABLE",
            "PostgresStore: table must be a name like 'halt_state' or 'myschema.halt_state' (letters, digits, _; "
            f"at most 63 each), got {table!r}.",
        )
    return ".".join(f'"{p}"' for p in parts)


def create_table_sql(table: str = "halt_state") -> str:
    """The table and its index, as the store creates them on first use (``create_table=True``), for teams that
    migrate by hand. Byte for byte the TypeScript ``createTableSql()``: see its comments for the columns."""
    t = quote_table(table)
    index = f'"{table.split(".")[-1]}_expires_min"'
    return "\n".join(
        [
            f"CREATE TABLE IF NOT EXISTS {t} (",
            '  key         text COLLATE "C" PRIMARY KEY,',
            "  state       bytea NOT NULL,",
            "  version     bigint NOT NULL,",
            "  expires_at  float8 NOT NULL,",
            "  expires_min bigint NOT NULL",
            ");",
            f"CREATE INDEX IF NOT EXISTS {index} ON {t} (expires_min);",
        ]
    )


def _unless(cond: str, value: str, column: str) -> str:
    return f"CASE WHEN {cond} THEN {value} ELSE {column} END"


def _minute(ms: str) -> str:
    return f"floor({ms} / 60000)::bigint"


def statements(table: str) -> dict[str, str]:
    """The statements of sql.ts with psycopg's named parameters: ``k`` key, ``s`` state, ``e`` expires_at, ``n`` the
    check's now, ``p`` the version read, ``v`` the new version. Each is one round trip."""
    t = quote_table(table)
    # A conditional write that also hands back the current row when it loses, in one statement: on a conflict the
    # row is set to itself (CASE), and RETURNING shows it (evaluated on the newest row version, under its row lock).
    won = "t.version = %(p)s::bigint"
    expired = "t.expires_at <= %(n)s::float8"
    mine = "%(v)s::bigint"
    # The row only when the write lost (a won write returns its version alone).
    returning = (
        f"RETURNING t.version, CASE WHEN t.version = {mine} THEN NULL ELSE t.state END AS state, "
        f"CASE WHEN t.version = {mine} THEN NULL ELSE t.expires_at END AS expires_at"
    )
    s, e = "%(s)s::bytea", "%(e)s::float8"
    return {
        "read": f"SELECT state, version, expires_at FROM {t} WHERE key = %(k)s",
        "insert": f"INSERT INTO {t} AS t (key, state, version, expires_at, expires_min) "
        f"VALUES (%(k)s, {s}, {mine}, {e}, {_minute(e)}) "
        f"ON CONFLICT (key) DO UPDATE SET state = {_unless(expired, 'excluded.state', 't.state')}, "
        f"version = {_unless(expired, 'excluded.version', 't.version')}, "
        f"expires_at = {_unless(expired, 'excluded.expires_at', 't.expires_at')}, "
        f"expires_min = {_unless(expired, 'excluded.expires_min', 't.expires_min')} {returning}",
        "update": f"UPDATE {t} AS t SET state = {_unless(won, s, 't.state')}, "
        f"version = {_unless(won, mine, 't.version')}, expires_at = {_unless(won, e, 't.expires_at')}, "
        f"expires_min = {_unless(won, _minute(e), 't.expires_min')} "
        f"WHERE t.key = %(k)s {returning}",
        "lock": f"SELECT state, version, expires_at FROM {t} WHERE key = %(k)s FOR UPDATE",
        "locked_insert": f"INSERT INTO {t} (key, state, version, expires_at, expires_min) "
        f"VALUES (%(k)s, {s}, {mine}, {e}, {_minute(e)}) ON CONFLICT (key) DO NOTHING RETURNING version",
        "locked_update": f"UPDATE {t} SET state = {s}, version = {mine}, expires_at = {e}, "
        f"expires_min = {_minute(e)} WHERE key = %(k)s",
        "delete_like": f"DELETE FROM {t} WHERE key LIKE %(k)s",
        "delete": f"DELETE FROM {t} WHERE key = %(k)s",
        "cleanup": f"DELETE FROM {t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {t} WHERE expires_min <= "
        f"{_minute('%(n)s::float8')} AND expires_at <= %(n)s::float8 LIMIT %(b)s))",
        "count": f"SELECT count(*)::int AS n FROM {t} WHERE key LIKE %(k)s",
        "state_type": f"SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = '{t}'::regclass "
        "AND attname = 'state'",
    }


#: The parameter names of row ``r`` of a batch: key, state, expires_at, the version read, the new version.
_ROW_NAMES = [(f"k{r}", f"s{r}", f"e{r}", f"p{r}", f"v{r}") for r in range(MAX_BATCH)]


def batch_statements(table: str, n: int) -> dict[str, str]:
    """The conditional writes of ``n`` keys (distinct, sorted) in one statement: the TypeScript ``batchStatements()``
    with psycopg's named parameters, per row ``r``: ``k<r>`` key, ``s<r>`` state, ``e<r>`` expires_at, ``p<r>`` the
    version read (``update``), ``v<r>`` the new version; and ``n``, the earliest now of the batch (``insert``: an
    expired row is overwritten only if expired for every check). Rows are locked in the order of the VALUES list (a
    nested loop over it), so two batches lock their common keys in the same order.

    - ``update``: ``update`` for each key. Returns ``key``, ``version``, and ``state``, ``expires_at`` of the rows
      whose write lost (null for a won one); a key with no row returns nothing.
    - ``insert``: ``insert`` for each key. Returns ``key``, ``version``, ``state``, ``expires_at`` of every row (a won
      write shows its own version)."""
    t = quote_table(table)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_BATCH:
        raise ValueError(f"batch_statements: n must be from 1 to {MAX_BATCH}, got {n!r}")
    won = "t.version = v.old"
    expired = "t.expires_at <= %(n)s::float8"
    updates = ", ".join(
        f"(%({k})s::text, %({s})s::bytea, %({e})s::float8, %({p})s::bigint, %({v})s::bigint)"
        for k, s, e, p, v in _ROW_NAMES[:n]
    )
    inserts = ", ".join(
        f"(%({k})s::text, %({s})s::bytea, %({v})s::bigint, %({e})s::float8, floor(%({e})s::float8 / 60000)::bigint)"
        for k, s, e, _, v in _ROW_NAMES[:n]
    )
    return {
        "update": f"UPDATE {t} AS t SET state = {_unless(won, 'v.state', 't.state')}, "
        f"version = {_unless(won, 'v.new', 't.version')}, expires_at = {_unless(won, 'v.expires_at', 't.expires_at')}, "
        f"expires_min = {_unless(won, 'floor(v.expires_at / 60000)::bigint', 't.expires_min')} "
        f"FROM (VALUES {updates}) AS v (key, state, expires_at, old, new) "
        "WHERE t.key = v.key "
        "RETURNING t.key, t.version, CASE WHEN t.version = v.new THEN NULL ELSE t.state END AS state, "
        "CASE WHEN t.version = v.new THEN NULL ELSE t.expires_at END AS expires_at",
        "insert": f"INSERT INTO {t} AS t (key, state, version, expires_at, expires_min) VALUES {inserts} "
        f"ON CONFLICT (key) DO UPDATE SET state = {_unless(expired, 'excluded.state', 't.state')}, "
        f"version = {_unless(expired, 'excluded.version', 't.version')}, "
        f"expires_at = {_unless(expired, 'excluded.expires_at', 't.expires_at')}, "
        f"expires_min = {_unless(expired, 'excluded.expires_min', 't.expires_min')} "
        "RETURNING t.key, t.version, t.state, t.expires_at",
    }


def pack_state(state: Any) -> bytes:
    """A state as the ``state`` column holds it: little-endian IEEE-754 doubles (the TypeScript ``packState``)."""
    return struct.pack(f"<{len(state)}d", *state)


def unpack_state(b: bytes) -> list[float]:
    """The numbers of a ``state`` column value."""
    return list(struct.unpack(f"<{len(b) // 8}d", b))


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching every string that starts with ``prefix``."""
    return re.sub(r"([\\%_])", r"\\\1", prefix) + "%"


def lock_id(table: str) -> int:
    """The advisory lock id of a table's creation, as the TypeScript store computes it (FNV-1a over the code points
    of ``halt:create:<table>``, 31 bits): a Node and a Python process creating one table take one lock."""
    h = 0x811C9DC5
    for c in f"halt:create:{table}":
        h = ((h ^ ord(c)) * 0x01000193) & 0xFFFFFFFF
    return h & 0x7FFFFFFF


def _record(row: Any) -> Versioned[int]:
    return Versioned(unpack_state(row[0]), int(row[1]), float(row[2]))


def _written(row: Any, version: int) -> Written[int]:
    if row is None:  # deleted, or a concurrent insert not visible yet: read again
        return Written.lost()
    if int(row[0]) == version:
        return Written.won(version)
    # RETURNING version, state, expires_at
    return Written.lost(Versioned(unpack_state(row[1]), int(row[0]), float(row[2])))


def _write_params(key: str, next: Next, prev: Optional[Versioned[int]], version: int) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"k": key, "s": pack_state(next.state), "e": float(next.expires_at), "v": version}
    if prev is None:
        params["n"] = float(next.now)
        return "insert", params
    params["p"] = prev.version
    return "update", params


class _Pending:
    """A conditional write of the asyncio store waiting for the next batch (or sent in one): the single statement's
    name and parameters, and the future its check awaits (resolved only if not done: the check may be cancelled)."""

    __slots__ = ("future", "insert", "params")

    def __init__(self, insert: bool, params: dict[str, Any], future: asyncio.Future[Written[int]]) -> None:
        self.insert = insert
        self.params = params
        self.future = future


def _pending_key(w: _Pending) -> str:
    return str(w.params["k"])


def _check_batch(name: str, batch: object) -> int:
    """Keys per batch statement: ``True`` 32, ``False`` 1 (one statement per check), or a whole number 1..1000."""
    if batch is True:
        return DEFAULT_BATCH
    if batch is False:
        return 1
    if isinstance(batch, int) and not isinstance(batch, bool) and 1 <= batch <= MAX_BATCH:
        return batch
    raise HaltConfigError(
        "HALT_INVALID_POSTGRES_BATCH",
        f"{name}: batch must be True, False or a whole number of keys from 1 to {MAX_BATCH}, got {batch!r}. "
        f"Fix: omit it ({DEFAULT_BATCH}).",
    )


class _Postgres:
    """What the sync and asyncio stores share: options, keys, statements."""

    def _configure(
        self,
        name: str,
        connection_string: Optional[str],
        pool: Any,
        table: str,
        create_table: bool,
        prefix: str,
        cleanup_interval: float,
        pool_class: str,
    ) -> None:
        if pool is None and not isinstance(connection_string, str):
            raise HaltConfigError(
                "HALT_INVALID_POSTGRES_CLIENT",
                f"{name} needs connection_string or pool (a psycopg_pool.{pool_class}). "
                f"Fix: {name}(connection_string='postgresql://localhost/app').",
            )
        if pool is not None and (connection_string is not None or not callable(getattr(pool, "connection", None))):
            raise HaltConfigError(
                "HALT_INVALID_POSTGRES_CLIENT",
                f"{name}: pool must be a psycopg_pool.{pool_class} (and then no connection_string), "
                f"got {type(pool).__name__}.",
            )
        quote_table(table)
        self.cleanup_interval = check_cleanup_interval(
            name, cleanup_interval, "omit it (60000) or 0 to turn the periodic cleanup off"
        )
        self.table = table
        self.prefix = check_prefix(prefix, name)
        self.create_table = bool(create_table)
        self._sql = statements(table)
        self._owns_pool = pool is None

    def key(self, ns: str, id: str) -> str:
        """The row key of ``id`` under ``ns``: spec/KEYS.md, with NUL (which PostgreSQL text cannot hold) written
        ``%00``; hashed beyond 1024 bytes."""
        key = bounded_key(self.prefix, ns, id)
        return key.replace("\0", "%00") if "\0" in key else key

    def create_table_sql(self) -> str:
        """The table's DDL (what ``create_table`` runs)."""
        return create_table_sql(self.table)

    def _namespace_prefix(self, ns: Optional[str]) -> str:
        return self.prefix if ns is None else f"{self.prefix}{escape_key_part(ns).replace(chr(0), '%00')}:{{"

    def _cleanup_at(self, now: Optional[float], last_now: float, grace: int) -> float:
        return last_now - grace if now is None else now

    def _ddl(self) -> list[str]:
        return [f"SELECT pg_advisory_xact_lock({lock_id(self.table)})", *create_table_sql(self.table).split(";\n")]

    def _check_layout(self, row: Any) -> None:
        """An existing table of an older layout (``CREATE TABLE IF NOT EXISTS`` keeps it) fails here, with the fix,
        not on every write."""
        kind = None if row is None else row[0]
        if kind == "bytea":
            return
        raise HaltConfigError(
            "HALT_POSTGRES_TABLE_LAYOUT",
            f"PostgresStore: table {self.table} has a state column of type {kind}, made by an older Halt (the state "
            f"is bytea now). It holds rate-limit state only: drop it (DROP TABLE {quote_table(self.table)}) and the "
            "store creates it again on first use, or give the store another table.",
        )


class PostgresStore(_Postgres, CasStore[int]):
    """A store in PostgreSQL (9.5+) for synchronous code: one row per key in one table, on a psycopg 3
    ``ConnectionPool``. Every check is a compare-and-set: the algorithm runs in this process and the row is written
    only if nobody wrote it meanwhile, by a single statement that also returns the row when it loses; so a check
    costs one round trip when this process guessed the row right (a new key, an expired one, or one it wrote last),
    two otherwise, and a key contended by several processes goes on under a row lock. Threads of one process checking
    one key go as groups (one statement per group). Expired rows are deleted every ``cleanup_interval`` ms by a daemon
    thread. The table and its layout are the TypeScript ``PostgresStore``'s: Node and Python share it.

    With ``connection_string`` the store makes (and owns: ``close()`` closes it) a pool of up to ``max_connections``
    autocommit connections whose statements the server cancels after ``timeout`` ms (``statement_timeout``); a
    checkout waits at most ``timeout`` ms too. ``min_connections`` of them are opened before the first check (a pool
    that grows under load opens connections inside the checks' timeout). With ``pool``, configure those yourself
    (autocommit saves a round trip per statement). Either way a statement that runs past 1.25 x ``timeout`` (a server
    frozen on a live host, which neither cancels nor closes) has its connection's socket shut down, and the check
    fails into the limiter's ``on_store_error``.

    Example::

        from halt import RateLimiter
        from halt.stores.postgres import PostgresStore

        store = PostgresStore(connection_string="postgresql://localhost/app")
        limiter = RateLimiter(store=store, policy={"name": "api", "limit": 100, "window": "1m"})
        limiter.check("user:42")
    """

    speculation = "always"
    exclusive_after = 2

    def __init__(
        self,
        connection_string: Optional[str] = None,
        *,
        pool: Any = None,
        table: str = "halt_state",
        create_table: bool = True,
        prefix: str = "halt:",
        cleanup_interval: float = 60_000,
        expiry_grace_ms: int = 0,
        max_attempts: int = 100,
        timeout: float = 500,
        max_connections: int = 10,
        min_connections: int = 1,
    ) -> None:
        CasStore.__init__(self, "PostgresStore", max_attempts, expiry_grace_ms)
        self._configure(
            "PostgresStore", connection_string, pool, table, create_table, prefix, cleanup_interval, "ConnectionPool"
        )
        _check_timeout("PostgresStore", timeout, max_connections, min_connections)
        self.timeout = float(timeout)
        if pool is None:
            from psycopg_pool import ConnectionPool

            pool = ConnectionPool(
                str(connection_string),
                min_size=min_connections,
                max_size=max_connections,
                kwargs=_connection_kwargs(timeout),
                timeout=timeout / 1000,
                open=True,
                name="halt",
            )
        self.pool = pool
        self._wait = timeout / 1000 if self._owns_pool else None
        self._setup_lock = threading.Lock()
        self._ready_done = not self.create_table and not self._owns_pool
        self._stop = threading.Event()
        self._deadlines = _Deadlines(self.timeout, self._stop)
        if self.cleanup_interval > 0:
            start_cleanup_thread(self, self.cleanup_interval / 1000, self._stop, "halt-postgres-cleanup")

    def _query(self, name: str, params: dict[str, Any]) -> Any:
        """Run one statement; the first row (or None) for statements that return rows, else the row count."""
        if not self._ready_done:
            self._ready()
        with self.pool.connection(self._wait) as conn, self._deadlines.bound(conn):
            cur = conn.execute(self._sql[name], params, prepare=True)
            return cur.fetchone() if cur.description is not None else cur.rowcount

    def _ready(self) -> None:
        """Create the table on first use (once; again after a failure), under an advisory lock so that processes
        starting together do not race."""
        with self._setup_lock:
            if self._ready_done:
                return
            if self._owns_pool:
                self.pool.wait(self.timeout / 1000)  # its first min_connections, before the first statement
            if self.create_table:
                ddl = self._ddl()
                with (
                    self.pool.connection(self._wait) as conn,
                    self._deadlines.bound(conn, len(ddl) + 3),
                    conn.transaction(),
                ):
                    for statement in ddl:
                        conn.execute(statement)
                    self._check_layout(conn.execute(self._sql["state_type"]).fetchone())
            self._ready_done = True

    def _read(self, key: str, ns: str) -> Optional[Versioned[int]]:
        row = self._query("read", {"k": key})
        return None if row is None else _record(row)

    def _write(self, key: str, ns: str, next: Next, prev: Optional[Versioned[int]]) -> Written[int]:
        version = new_version()
        name, params = _write_params(key, next, prev, version)
        return _written(self._query(name, params), version)

    def _exclusive(self, key: str, ns: str, apply: Apply) -> None:
        """The check in a transaction that holds the row's lock: the writers of a hot key queue instead of racing."""
        import psycopg

        if not self._ready_done:
            self._ready()
        while True:
            done = True
            with self.pool.connection(self._wait) as conn, self._deadlines.bound(conn, 4), conn.transaction():
                row = conn.execute(self._sql["lock"], {"k": key}, prepare=True).fetchone()
                current = None if row is None else _record(row)
                nxt = apply(current)
                if nxt is not None:
                    params = {"k": key, "s": pack_state(nxt.state), "e": nxt.expires_at, "v": new_version()}
                    if current is not None:
                        conn.execute(self._sql["locked_update"], params, prepare=True)
                    elif conn.execute(self._sql["locked_insert"], params, prepare=True).fetchone() is None:
                        # Another transaction inserted it first: lock that row and start over.
                        done = False
                        raise psycopg.Rollback()
            if done:
                return

    def _remove(self, key: str, ns: str) -> None:
        self._query("delete", {"k": key})

    def _remove_all(self, ns: Optional[str]) -> None:
        self._query("delete_like", {"k": like_prefix(self._namespace_prefix(ns))})

    def cleanup_expired(self, now: Optional[float] = None) -> int:
        """Delete the rows whose state expired at ``now`` (default: the latest time this store has seen, less
        ``expiry_grace_ms``), in batches of 10,000 through the ``expires_min`` index. Returns how many."""
        at = self._cleanup_at(now, self.last_now, self.expiry_grace_ms)
        if not at > 0:
            return 0
        total = 0
        while True:
            n = int(self._query("cleanup", {"n": float(at), "b": CLEANUP_BATCH}))
            total += n
            if n < CLEANUP_BATCH:
                return total

    def size(self, ns: Optional[str] = None) -> int:
        """Rows held (of a namespace, or under the prefix): a count over the table, for tests and dashboards."""
        row = self._query("count", {"k": like_prefix(self._namespace_prefix(ns))})
        return int(row[0])

    def close(self) -> None:
        """Stop the cleanup thread, and close the pool if the store made it."""
        self._stop.set()
        if self._owns_pool:
            self.pool.close()


class AsyncPostgresStore(_Postgres, AsyncCasStore[int]):
    """``PostgresStore`` for asyncio code, on psycopg 3's ``AsyncConnectionPool``: the same table and statements,
    every method a coroutine (the limiter's ``timeout`` bounds each check), and checks of one key coalesce. The pool
    it makes opens on first use; the periodic cleanup is a task of the event loop that first used the store.

    Under load the writes of many keys go in one statement (``batch``, as the TypeScript store): while every
    connection of the pool (its ``max_size``) is busy with this store's writes, or callers wait for the pool, the
    conditional writes of other keys wait, and when one of those statements ends they go together, up to ``batch``
    distinct keys (sorted) per ``UPDATE ... FROM (VALUES ...)`` or ``INSERT ... VALUES ..., ...``, each row the same
    conditional write as the single statements. A lone check goes at once, as a single statement. ``batch`` is True
    (32 keys), False (one statement per check) or a whole number from 1 to 1000.

    Example::

        store = AsyncPostgresStore(connection_string="postgresql://localhost/app")
        limiter = RateLimiter(store=store, policy=presets.PUBLIC_API, timeout=200)
        d = await limiter.acheck("user:42")
        await store.aclose()
    """

    speculation = "always"
    exclusive_after = 2

    def __init__(
        self,
        connection_string: Optional[str] = None,
        *,
        pool: Any = None,
        table: str = "halt_state",
        create_table: bool = True,
        prefix: str = "halt:",
        cleanup_interval: float = 60_000,
        expiry_grace_ms: int = 0,
        max_attempts: int = 100,
        timeout: float = 5000,
        max_connections: int = 10,
        min_connections: int = 1,
        batch: Union[bool, int] = True,
    ) -> None:
        AsyncCasStore.__init__(self, "AsyncPostgresStore", max_attempts, expiry_grace_ms)
        self._configure(
            "AsyncPostgresStore",
            connection_string,
            pool,
            table,
            create_table,
            prefix,
            cleanup_interval,
            "AsyncConnectionPool",
        )
        _check_timeout("AsyncPostgresStore", timeout, max_connections, min_connections)
        self.max_batch = _check_batch("AsyncPostgresStore", batch)
        if pool is None:
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(
                str(connection_string),
                min_size=min_connections,
                max_size=max_connections,
                kwargs=_connection_kwargs(timeout),
                timeout=timeout / 1000,
                open=False,
                name="halt",
            )
        self.pool = pool
        self.timeout = float(timeout)
        self._ready_done = False
        self._setup: Optional[asyncio.Future[None]] = None
        self._cleanup_task: Optional[asyncio.Task[None]] = None
        lanes = getattr(pool, "max_size", None)
        #: Statements this store can have running at once: the pool's ``max_size`` (10 if it tells none).
        self._lanes = lanes if isinstance(lanes, int) and lanes >= 1 else 10
        #: Write statements of this store running (or waiting for a connection), and the writes waiting for a batch.
        self._inflight = 0
        self._queued: List[_Pending] = []
        self._batches: dict[int, dict[str, str]] = {}
        self._batch_tasks: set[asyncio.Task[None]] = set()

    async def _query(self, name: str, params: dict[str, Any]) -> Any:
        return await self._execute(self._sql[name], params)

    async def _execute(self, sql: str, params: dict[str, Any], every_row: bool = False) -> Any:
        """One prepared statement: its first row (or ``every_row``: all of them), or its row count."""
        if not self._ready_done:
            await self._ready()
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params, prepare=True)
            if cur.description is None:
                return cur.rowcount
            return await (cur.fetchall() if every_row else cur.fetchone())

    async def _ready(self) -> None:
        """Open the pool the store made, create the table (once; again after a failure), start the cleanup task.
        Concurrent first checks wait for one setup (shielded: a check cancelled by its timeout does not stop it)."""
        if self._setup is None:
            self._setup = asyncio.ensure_future(self._create())
        setup = self._setup
        try:
            await asyncio.shield(setup)
        except BaseException:
            if setup.done() and self._setup is setup:
                self._setup = None  # it failed: the next check tries again
            raise
        self._ready_done = True

    async def _create(self) -> None:
        if self._owns_pool:
            await self.pool.open(wait=True, timeout=self.timeout / 1000)  # with its first min_connections
        if self.create_table:
            async with self.pool.connection() as conn, conn.transaction():
                for statement in self._ddl():
                    await conn.execute(statement)
                self._check_layout(await (await conn.execute(self._sql["state_type"])).fetchone())
        if self.cleanup_interval > 0 and self._cleanup_task is None:
            self._cleanup_task = start_cleanup_task(self, self.cleanup_interval / 1000)

    async def _read(self, key: str, ns: str) -> Optional[Versioned[int]]:
        row = await self._query("read", {"k": key})
        return None if row is None else _record(row)

    async def _write(self, key: str, ns: str, next: Next, prev: Optional[Versioned[int]]) -> Written[int]:
        version = new_version()
        name, params = _write_params(key, next, prev, version)
        # Wait for a batch only while a write of this store is running (its end sends the batch), and either every
        # connection is busy with this store's writes, or the pool has callers waiting for one.
        if self.max_batch > 1 and self._inflight > 0 and (self._inflight >= self._lanes or self._pool_waiting()):
            w = _Pending(name == "insert", params, asyncio.get_running_loop().create_future())
            self._queued.append(w)
            return await w.future  # cancelled by the check's timeout: the batch skips it, or ignores its row
        # A lone check: at once, in the caller's task, as before.
        self._inflight += 1
        try:
            return _written(await self._query(name, params), version)
        finally:
            self._inflight -= 1
            self._flush()

    def _pool_waiting(self) -> bool:
        """Whether callers wait for a connection of the pool (psycopg_pool's ``requests_waiting``: a dict built by
        ``get_stats()``, about a microsecond; asked only while fewer writes than connections run)."""
        stats = getattr(self.pool, "get_stats", None)
        return stats is not None and int(stats().get("requests_waiting", 0)) > 0

    def _flush(self) -> None:
        """Send what waits, while connections are free: up to ``max_batch`` distinct keys per statement (a repeated
        key waits for the next), the updates in one statement and the inserts in another. Writes whose check gave up
        (cancelled) are dropped."""
        while self._queued and self._inflight < self._lanes:
            inserts: List[_Pending] = []
            updates: List[_Pending] = []
            rest: List[_Pending] = []
            keys: set[str] = set()
            for w in self._queued:
                if w.future.done():
                    continue
                key = _pending_key(w)
                if len(keys) >= self.max_batch or key in keys:
                    rest.append(w)
                else:
                    keys.add(key)
                    (inserts if w.insert else updates).append(w)
            self._queued = rest
            if updates:
                self._send(updates, False)
            if inserts:
                self._send(inserts, True)

    def _send(self, writes: List[_Pending], insert: bool) -> None:
        """One statement for ``writes`` (distinct keys, all inserts or all updates), in a task of its own: no check's
        cancellation reaches it."""
        self._inflight += 1
        task = asyncio.ensure_future(self._statement(writes, insert))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    async def _statement(self, writes: List[_Pending], insert: bool) -> None:
        try:
            if len(writes) == 1:
                w = writes[0]
                results = {_pending_key(w): await self._query("insert" if insert else "update", w.params)}
            else:
                # Rows are locked in this order: every batch of this store's processes takes its common keys in the
                # same order.
                writes.sort(key=_pending_key)
                sql, params = self._batch(writes, insert)
                results = {row[0]: row[1:] for row in await self._execute(sql, params, every_row=True)}
        except Exception as error:
            # Batches lock their keys in one order; a deadlock with some other writer of several rows is still
            # possible: then each write goes again on its own.
            if len(writes) > 1 and getattr(error, "sqlstate", None) == "40P01":
                for w in writes:
                    if not w.future.done():
                        self._send([w], insert)
            else:
                for w in writes:
                    if not w.future.done():
                        w.future.set_exception(error)
        except BaseException:  # cancelled (the loop is closing): answer everyone
            for w in writes:
                w.future.cancel()
            raise
        else:
            # A key missing from the result has no row (deleted, or a concurrent insert not visible yet): read again.
            for w in writes:
                if not w.future.done():
                    w.future.set_result(_written(results.get(_pending_key(w)), int(w.params["v"])))
        finally:
            self._inflight -= 1
            self._flush()

    def _batch(self, writes: List[_Pending], insert: bool) -> tuple[str, dict[str, Any]]:
        """The batch statement for ``writes`` (sorted), and its parameters."""
        n = len(writes)
        sql = self._batches.get(n)
        if sql is None:
            sql = self._batches[n] = batch_statements(self.table, n)
        params: dict[str, Any] = {}
        if insert:
            now = float("inf")
            for (k, s, e, _, v), w in zip(_ROW_NAMES, writes):
                p = w.params
                params[k], params[s], params[e], params[v] = p["k"], p["s"], p["e"], p["v"]
                if p["n"] < now:
                    now = p["n"]
            params["n"] = now
            return sql["insert"], params
        for (k, s, e, o, v), w in zip(_ROW_NAMES, writes):
            p = w.params
            params[k], params[s], params[e], params[o], params[v] = p["k"], p["s"], p["e"], p["p"], p["v"]
        return sql["update"], params

    async def _exclusive(self, key: str, ns: str, apply: Apply) -> None:
        import psycopg

        if not self._ready_done:
            await self._ready()
        while True:
            done = True
            async with self.pool.connection() as conn, conn.transaction():
                row = await (await conn.execute(self._sql["lock"], {"k": key}, prepare=True)).fetchone()
                current = None if row is None else _record(row)
                nxt = apply(current)
                if nxt is not None:
                    params = {"k": key, "s": pack_state(nxt.state), "e": nxt.expires_at, "v": new_version()}
                    if current is not None:
                        await conn.execute(self._sql["locked_update"], params, prepare=True)
                    elif (
                        await (await conn.execute(self._sql["locked_insert"], params, prepare=True)).fetchone() is None
                    ):
                        done = False
                        raise psycopg.Rollback()
            if done:
                return

    async def _remove(self, key: str, ns: str) -> None:
        await self._query("delete", {"k": key})

    async def _remove_all(self, ns: Optional[str]) -> None:
        await self._query("delete_like", {"k": like_prefix(self._namespace_prefix(ns))})

    async def cleanup_expired(self, now: Optional[float] = None) -> int:
        """As ``PostgresStore.cleanup_expired()``."""
        at = self._cleanup_at(now, self.last_now, self.expiry_grace_ms)
        if not at > 0:
            return 0
        total = 0
        while True:
            n = int(await self._query("cleanup", {"n": float(at), "b": CLEANUP_BATCH}))
            total += n
            if n < CLEANUP_BATCH:
                return total

    async def size(self, ns: Optional[str] = None) -> int:
        row = await self._query("count", {"k": like_prefix(self._namespace_prefix(ns))})
        return int(row[0])

    async def aclose(self) -> None:
        """Stop the cleanup task, and close the pool if the store made it."""
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            self._cleanup_task = None
        if self._owns_pool:
            await self.pool.close()


def _check_timeout(name: str, timeout: object, max_connections: object, min_connections: object) -> None:
    check_timeout(name, timeout)
    if not isinstance(max_connections, int) or isinstance(max_connections, bool) or max_connections < 1:
        raise HaltConfigError(
            "HALT_INVALID_POSTGRES_CLIENT",
            f"{name}: max_connections must be a whole number >= 1, got {max_connections!r}. Fix: omit it (10).",
        )
    if (
        not isinstance(min_connections, int)
        or isinstance(min_connections, bool)
        or not 0 <= min_connections <= max_connections
    ):
        raise HaltConfigError(
            "HALT_INVALID_POSTGRES_CLIENT",
            f"{name}: min_connections must be a whole number from 0 to max_connections ({max_connections}), "
            f"got {min_connections!r}. Fix: omit it (1).",
        )


def _connection_kwargs(timeout: float) -> dict[str, Any]:
    """Autocommit connections whose statements the server cancels after ``timeout`` ms, which the client drops when
    the server's host stops acknowledging data for as long (``tcp_user_timeout``: a partition, a host gone), with a
    connect timeout. A server process frozen on a live host is not bounded by these (the host still acknowledges):
    the asyncio store, under the limiter's timeout, is."""
    return {
        "autocommit": True,
        "connect_timeout": max(2, int(timeout / 1000 + 0.999)),
        "tcp_user_timeout": int(timeout),
        "options": f"-c statement_timeout={int(timeout)}",
    }


__all__ = ["AsyncPostgresStore", "PostgresStore", "create_table_sql", "like_prefix", "lock_id", "quote_table"]
