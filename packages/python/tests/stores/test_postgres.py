"""PostgresStore and AsyncPostgresStore on a real PostgreSQL: the conformance suite, then what is PostgreSQL's own:
the table of createTableSql(), round trips per check, the row lock under contention, cleanup, options."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from halt import HaltConfigError, Policy, RateLimiter
from halt.core.policy import compile_policy
from halt.stores.postgres import (
    AsyncPostgresStore,
    PostgresStore,
    batch_statements,
    create_table_sql,
    lock_id,
    statements,
    unpack_state,
)
from tests.stores.conformance import *  # noqa: F403 (the conformance tests)
from tests.stores.conformance import Inspected, StoreHarness
from tests.stores.factories import open_postgres

T0 = 1_700_000_000_000
URL = os.environ.get("HALT_TEST_POSTGRES_URL")


def _need() -> str:
    if URL is None:
        if os.environ.get("CI"):
            pytest.fail("HALT_TEST_POSTGRES_URL is not set: scripts/test.sh starts the servers")
        pytest.skip('HALT_TEST_POSTGRES_URL not set (run: eval "$(scripts/services.sh start postgres)")')
    return URL


def table_for(label: str) -> str:
    return f"halt_{label}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def admin() -> Iterator[Any]:
    import psycopg

    conn = psycopg.connect(_need(), autocommit=True)
    yield conn
    conn.close()


@pytest.fixture(scope="module", params=["sync", "async"])
def harness(request: Any, admin: Any) -> Iterator[StoreHarness]:
    url = _need()
    form = request.param
    table = table_for(f"conf_{form}")
    prefix = "halt:"
    # The sync store's own timeout bounds each statement (the stall test waits for it); the async one's checks are
    # bounded by the limiter's timeout.
    timeout = "400" if form == "sync" else "5000"

    def inspect(store: Any, ns: str, id: str) -> Optional[Inspected]:
        row = admin.execute(f"SELECT state FROM {table} WHERE key = %s", (store.key(ns, id),)).fetchone()
        return None if row is None else Inspected(state=unpack_state(row[0]))

    def stall(store: Any, ms: float) -> None:
        """The table locked by another transaction: every statement on it waits, as on a server that stopped."""
        import psycopg

        with psycopg.connect(url) as c:
            c.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            time.sleep(ms / 1000)

    yield StoreHarness(
        name=f"{'Postgres' if form == 'sync' else 'AsyncPostgres'}Store",
        create=lambda: open_postgres(url, table, prefix, form, timeout)[0],
        dispose=(lambda s: s.close()) if form == "sync" else (lambda s: s.aclose()),
        inspect=inspect,
        expire=lambda s, at: s.cleanup_expired(at),
        stall=stall,
        stall_timeout_ms=float(timeout) if form == "sync" else 150,
        worker=("tests.stores.factories:open_postgres", [url, table, prefix, form]),
    )
    admin.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def own(admin: Any) -> Iterator[tuple[PostgresStore, str]]:
    table = table_for("own")
    store = PostgresStore(_need(), table=table, cleanup_interval=0)
    yield store, table
    store.close()
    admin.execute(f"DROP TABLE IF EXISTS {table}")


def test_creates_the_table_and_index_of_create_table_sql_on_first_use(own: Any, admin: Any) -> None:
    store, table = own
    rule = compile_policy(Policy(name="ddl", limit=10, window=60))
    store.consume(rule.ns, "user:42", rule, time.time() * 1000, 1)
    cols = admin.execute(
        "SELECT column_name, data_type, collation_name FROM information_schema.columns WHERE table_name = %s "
        "ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    assert cols == [
        ("key", "text", "C"),
        ("state", "bytea", None),
        ("version", "bigint", None),
        ("expires_at", "double precision", None),
        ("expires_min", "bigint", None),
    ]
    idx = admin.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s ORDER BY indexname", (table,)).fetchall()
    assert [r[0] for r in idx] == [f"{table}_expires_min", f"{table}_pkey"]
    assert store.create_table_sql() == create_table_sql(table)


OLD_LAYOUT = (
    'CREATE TABLE {} (key text COLLATE "C" PRIMARY KEY, state float8[] NOT NULL, version bigint NOT NULL, '
    "expires_at float8 NOT NULL, expires_min bigint NOT NULL)"
)


def test_a_table_of_the_older_layout_fails_its_first_check_with_the_fix(admin: Any) -> None:
    table = table_for("old")
    admin.execute(OLD_LAYOUT.format(table))
    store = PostgresStore(_need(), table=table, cleanup_interval=0)
    rule = compile_policy(Policy(name="old", limit=10, window=60))
    try:
        with pytest.raises(HaltConfigError) as e:
            store.consume(rule.ns, "user:42", rule, T0, 1)
        assert e.value.code == "HALT_POSTGRES_TABLE_LAYOUT"
        assert f'DROP TABLE "{table}"' in str(e.value)
        admin.execute(f"DROP TABLE {table}")
        assert store.consume(rule.ns, "user:42", rule, T0, 1).allowed  # created again, after the failure
        row = admin.execute(f"SELECT state FROM {table}").fetchone()
        assert unpack_state(row[0]) == [0, 9, T0]  # token bucket (blocked_until, tokens, last_ms)
    finally:
        store.close()
        admin.execute(f"DROP TABLE IF EXISTS {table}")


async def test_the_async_store_checks_the_layout_too(admin: Any) -> None:
    table = table_for("old")
    admin.execute(OLD_LAYOUT.format(table))
    store = AsyncPostgresStore(_need(), table=table, cleanup_interval=0)
    rule = compile_policy(Policy(name="old", limit=10, window=60))
    try:
        with pytest.raises(HaltConfigError, match="older Halt"):
            await store.consume(rule.ns, "user:42", rule, T0, 1)
    finally:
        await store.aclose()
        admin.execute(f"DROP TABLE IF EXISTS {table}")


def test_ddl_and_lock_id_are_the_typescript_ones() -> None:
    from tests.stores.test_cas import node_keys

    got = node_keys([["ddl", "halt_state"], ["ddl", "app.halt_x"], ["lockId", "halt_state"], ["lockId", "app.halt_x"]])
    assert got == [
        create_table_sql("halt_state"),
        create_table_sql("app.halt_x"),
        lock_id("halt_state"),
        lock_id("app.halt_x"),
    ]


def test_one_statement_per_check_when_the_guess_is_right_two_after_another_writer(own: Any) -> None:
    store, table = own
    rule = compile_policy(Policy(name="rt", limit=100, window=60))
    store.consume(rule.ns, "warm", rule, T0, 1)
    c = store.counters
    n = c.reads + c.writes
    for i in range(10):
        store.consume(rule.ns, f"new-{i}", rule, T0, 1)  # new keys
    for i in range(10):
        store.consume(rule.ns, "mine", rule, T0 + i, 1)  # this process's key
    store.consume(rule.ns, "new-0", rule, T0 + 600_000, 1)  # long expired
    assert c.reads + c.writes - n == 21
    other = PostgresStore(_need(), table=table, cleanup_interval=0)
    other.consume(rule.ns, "mine", rule, T0 + 20, 1)
    n = c.reads + c.writes
    assert store.consume(rule.ns, "mine", rule, T0 + 21, 1).remaining == 88
    assert c.reads + c.writes - n == 2  # the first write lost and handed back the row: no read
    assert c.reads == 0
    other.close()


def test_a_contended_key_goes_on_under_the_row_lock(own: Any) -> None:
    _, table = own
    # Several stores (as several processes) on one key: conflicts, then the row lock; exactly the limit admitted.
    # What is tested is exactness, not speed: 16 threads queue on one row lock, and a loaded machine once made one
    # statement miss the default 500 ms, so these stores allow 10 s.
    stores = [PostgresStore(_need(), table=table, cleanup_interval=0, timeout=10_000) for _ in range(4)]
    rule = compile_policy(Policy(name="hot", limit=150, window=3600))
    admitted = [0] * 16
    start = threading.Barrier(16)

    def lane(i: int) -> None:
        s = stores[i % 4]
        start.wait()
        for _ in range(20):
            if s.consume(rule.ns, "hot", rule, T0, 1).allowed:
                admitted[i] += 1

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 150
    conflicts = sum(s.counters.conflicts for s in stores)
    locked = sum(s.counters.locked for s in stores)
    print(f"4 stores x 4 threads on one key: {conflicts} conflicts, {locked} groups under the row lock")
    for s in stores:
        s.close()


def test_cleanup_deletes_expired_rows_in_batches_and_size_counts(own: Any) -> None:
    store, _ = own
    rule = compile_policy(Policy(name="cl", limit=2, window=1))
    for i in range(30):
        store.consume(rule.ns, f"k{i}", rule, T0, 1)
    assert store.size(rule.ns) == 30 and store.size() == 30
    assert store.cleanup_expired(T0 + 100) == 0
    assert store.cleanup_expired(T0 + 500) == 30  # one unit back after 500 ms: fresh
    assert store.size() == 0
    assert store.cleanup_expired() == 0  # by default: the latest time seen


def test_the_cleanup_thread_runs_and_ends_with_the_store(admin: Any) -> None:
    table = table_for("timer")
    store = PostgresStore(_need(), table=table, cleanup_interval=20)
    rule = compile_policy(Policy(name="t", limit=2, window=1))
    now = time.time() * 1000
    store.consume(rule.ns, "a", rule, now - 10_000, 1)
    store.consume(rule.ns, "b", rule, now, 1)  # the latest time seen: a's row is long expired by then
    deadline = time.monotonic() + 5
    while store.size() != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.size() == 1
    store.close()
    admin.execute(f"DROP TABLE IF EXISTS {table}")


async def test_async_store_one_statement_per_check_and_coalesced_checks(admin: Any) -> None:
    table = table_for("async")
    store = AsyncPostgresStore(_need(), table=table, cleanup_interval=0)
    rule = compile_policy(Policy(name="a", limit=10, window=60))
    import asyncio

    outs = await asyncio.gather(*(store.consume(rule.ns, "k", rule, T0, 1) for _ in range(50)))
    assert sum(o.allowed for o in outs) == 10
    assert store.counters.writes <= 3 and store.counters.reads == 0  # one alone, then the 49 others as one group
    assert await store.size() == 1
    await store.clear()
    assert await store.size() == 0
    await store.aclose()
    admin.execute(f"DROP TABLE IF EXISTS {table}")


def test_create_table_false_leaves_the_schema_alone(admin: Any) -> None:
    import psycopg

    table = table_for("none")
    store = PostgresStore(_need(), table=table, create_table=False, cleanup_interval=0)
    rule = compile_policy(Policy(name="n", limit=1, window=1))
    with pytest.raises(psycopg.errors.UndefinedTable):
        store.consume(rule.ns, "a", rule, T0, 1)
    limiter = RateLimiter(store=store, policy=Policy(name="n", limit=1, window=1), on_store_error="open")
    assert limiter.check("a").reason == "store_error"  # at request time: the failure policy, no exception
    store.close()


class _Recording:
    """An AsyncPostgresStore on a pool of ``max_size`` connections whose statements are recorded as the store sends
    them (a connection class that notes each ``execute``): by name, ``insert`` / ``update`` for the single statements,
    ``insert<n>`` / ``update<n>`` for the batches of n keys."""

    def __init__(self, table: str, max_size: int, options: str = "", **store: Any) -> None:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        single = statements(table)
        known = {single["insert"]: "insert", single["update"]: "update"}
        for n in range(2, 33):
            b = batch_statements(table, n)
            known[b["insert"]], known[b["update"]] = f"insert{n}", f"update{n}"
        names: list[str] = []
        self.names = names

        class Conn(psycopg.AsyncConnection):  # type: ignore[type-arg]
            async def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                if isinstance(query, str):
                    names.append(known.get(query, "other"))
                return await super().execute(query, params, **kw)

        kwargs: dict[str, Any] = {"autocommit": True}
        if options:
            kwargs["options"] = options
        self.pool = AsyncConnectionPool(
            _need(), min_size=max_size, max_size=max_size, kwargs=kwargs, connection_class=Conn, open=False
        )
        self.store = AsyncPostgresStore(pool=self.pool, table=table, cleanup_interval=0, **store)

    async def open(self) -> _Recording:
        await self.pool.open(wait=True)
        return self

    def batches(self, kind: str = "(insert|update)") -> list[str]:
        """The batch statements sent (of ``kind``: insert, update, or both)."""
        return [n for n in self.names if re.fullmatch(f"{kind}[0-9]+", n)]

    async def close(self) -> None:
        await self.store.aclose()
        await self.pool.close()


@pytest.fixture
def batch_table(admin: Any) -> Iterator[str]:
    table = table_for("batch")
    yield table
    admin.execute(f"DROP TABLE IF EXISTS {table}")


async def test_while_every_connection_is_busy_the_checks_of_other_keys_go_together(
    batch_table: str, admin: Any
) -> None:
    r = await _Recording(batch_table, 2).open()
    single = await _Recording(batch_table, 2, batch=False).open()
    try:
        rule = compile_policy(Policy(name=f"batch-{uuid.uuid4().hex[:6]}", limit=2, window=3600))
        alone = compile_policy(Policy(name=f"alone-{uuid.uuid4().hex[:6]}", limit=2, window=3600))
        await r.store.peek(rule.ns, "warm", rule, T0)  # table checked
        await single.store.peek(alone.ns, "warm", alone, T0)
        r.names.clear()
        # 3 checks of each of 60 keys, all at once: new keys (inserts), then rows this store wrote (updates).
        outs = await asyncio.gather(*(r.store.consume(rule.ns, f"k{i % 60}", rule, T0, 1) for i in range(180)))
        for k in range(60):
            assert [o.allowed for o in outs[k::60]] == [True, True, False], k
        batches = r.batches()
        writes = [n for n in r.names if n.startswith(("insert", "update"))]
        print(f"180 checks of 60 keys on 2 connections: {len(writes)} statements, batches {batches}")
        assert batches
        assert len(r.names) < 60  # 120 writes (the 2nd and 3rd check of a key go as one group)
        assert r.store.counters.writes == 120
        assert r.store.counters.conflicts == 0
        # The rows are what single statements write: the same checks on a store with batch=False.
        outs = await asyncio.gather(*(single.store.consume(alone.ns, f"k{i % 60}", alone, T0, 1) for i in range(180)))
        for k in range(60):
            assert [o.allowed for o in outs[k::60]] == [True, True, False], k
        assert not single.batches()

        def rows(ns: str) -> list[Any]:
            return admin.execute(
                f"SELECT substr(key, length(%s) + 1), state, expires_at, expires_min FROM {batch_table} "
                "WHERE key LIKE %s ORDER BY key",
                (f"halt:{ns}:", f"halt:{ns}:{{k%"),
            ).fetchall()

        batched, singles = rows(rule.ns), rows(alone.ns)
        assert len(batched) == 60 and batched == singles
        assert all(unpack_state(row[1]) == [0, 0, T0] for row in batched)
        # One at a time, nothing waits: single statements.
        r.names.clear()
        for i in range(5):
            await r.store.consume(rule.ns, f"lone{i}", rule, T0, 1)
        assert r.names == ["insert"] * 5
    finally:
        await r.close()
        await single.close()


async def test_a_batch_that_loses_some_rows_gets_them_back_and_an_insert_batch_overwrites_expired_rows(
    batch_table: str,
) -> None:
    a = await _Recording(batch_table, 1).open()
    b = await _Recording(batch_table, 1).open()
    try:
        rule = compile_policy(Policy(name=f"race-{uuid.uuid4().hex[:6]}", limit=5, window=10))
        await asyncio.gather(*(a.store.consume(rule.ns, f"k{i}", rule, T0, 1) for i in range(20)))  # 20 rows, by a
        await asyncio.gather(*(b.store.consume(rule.ns, f"k{i}", rule, T0, 1) for i in range(10)))  # b moves half
        assert b.batches("insert")  # b's inserts of live rows lost (and went again as updates)
        a.names.clear()
        # a's guesses of k0..k9 are stale now: those writes lose inside the batch, come back with b's rows, go again.
        outs = await asyncio.gather(*(a.store.consume(rule.ns, f"k{i}", rule, T0, 1) for i in range(20)))
        assert [o.remaining for o in outs] == [2 if i < 10 else 3 for i in range(20)]
        assert a.store.counters.conflicts == 10
        assert a.batches("update")
        # Long after: every row expired; b (which holds no guess for k10..k19) inserts over them in batches.
        b.names.clear()
        later = await asyncio.gather(*(b.store.consume(rule.ns, f"k{i}", rule, T0 + 3_600_000, 1) for i in range(20)))
        assert [o.remaining for o in later] == [4] * 20
        assert b.batches("insert")
    finally:
        await a.close()
        await b.close()


async def test_a_batch_that_deadlocks_with_another_transaction_goes_again_key_by_key(
    batch_table: str, admin: Any
) -> None:
    import psycopg

    # The store's session detects deadlocks first (100 ms against the default 1 s), so the batch is the one aborted.
    r = await _Recording(batch_table, 1, options="-c deadlock_timeout=100ms").open()
    other = await psycopg.AsyncConnection.connect(_need(), autocommit=True)
    try:
        rule = compile_policy(Policy(name=f"dl-{uuid.uuid4().hex[:6]}", limit=100, window=3600))
        for id in ("a", "b", "c"):
            await r.store.consume(rule.ns, id, rule, T0, 1)

        def deadlocks() -> int:
            row = admin.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()
            return int(row[0])

        before = deadlocks()
        update = f"UPDATE {batch_table} SET version = version + 1 WHERE key = %s"
        await other.execute("BEGIN")
        await other.execute(update, (r.store.key(rule.ns, "b"),))  # holds b
        r.names.clear()
        # c goes alone; a and b wait for it, then go as one batch that locks a, and waits for b.
        checks = [asyncio.ensure_future(r.store.consume(rule.ns, id, rule, T0, 1)) for id in ("c", "a", "b")]
        deadline = time.monotonic() + 5
        while "update2" not in r.names:
            assert time.monotonic() < deadline, r.names
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        # Now this transaction waits for a, which the batch holds: a deadlock, which aborts the batch.
        await other.execute(update, (r.store.key(rule.ns, "a"),))
        await other.execute("COMMIT")
        outs = await asyncio.gather(*checks)
        assert [o.allowed for o in outs] == [True, True, True]
        assert [o.remaining for o in outs] == [98, 98, 98]
        assert r.names.count("update2") == 1
        assert r.names.count("update") >= 3, r.names  # c, then a and b again alone
        await r.close()  # a backend publishes its statistics when it exits (or some seconds after going idle)
        deadline = time.monotonic() + 10
        while deadlocks() != before + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert deadlocks() == before + 1
    finally:
        await other.execute("ROLLBACK")
        await other.close()
        await r.close()


async def test_a_check_cancelled_while_its_write_waits_or_runs_in_a_batch_breaks_nothing(batch_table: str) -> None:
    r = await _Recording(batch_table, 1).open()
    try:
        rule = compile_policy(Policy(name=f"cx-{uuid.uuid4().hex[:6]}", limit=5, window=3600))
        await r.store.peek(rule.ns, "warm", rule, T0)
        r.names.clear()
        tasks = [asyncio.ensure_future(r.store.consume(rule.ns, f"k{i}", rule, T0, 1)) for i in range(20)]
        await asyncio.sleep(0)  # every check has queued its write behind k0's
        for i in (3, 7, 11):
            tasks[i].cancel()
        outs = await asyncio.gather(*tasks, return_exceptions=True)
        for i, o in enumerate(outs):
            if i in (3, 7, 11):
                assert isinstance(o, asyncio.CancelledError)
            else:
                assert not isinstance(o, BaseException) and o.remaining == 4, (i, o)
        assert r.batches("insert")
        assert (await r.store.consume(rule.ns, "k3", rule, T0, 1)).remaining == 4  # its write never went
        # Cancelled while the batch statement runs: the others get their answers, the write is done all the same.
        r.names.clear()
        tasks = [asyncio.ensure_future(r.store.consume(rule.ns, f"j{i}", rule, T0, 1)) for i in range(10)]
        deadline = time.monotonic() + 5
        while "insert9" not in r.names:  # j0 alone, then j1..j9 in one statement
            assert time.monotonic() < deadline, r.names
            await asyncio.sleep(0)
        tasks[5].cancel()
        outs = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(outs[5], asyncio.CancelledError)
        assert [o.remaining for i, o in enumerate(outs) if i != 5] == [4] * 9  # type: ignore[union-attr]
        assert (await r.store.consume(rule.ns, "j5", rule, T0, 1)).remaining == 3
        assert r.store._inflight == 0 and not r.store._queued
    finally:
        await r.close()


def test_batch_statements_are_the_typescript_ones_and_batch_is_validated() -> None:
    b = batch_statements("app.halt_x", 3)
    assert b["update"].count("%(k2)s") == 1 and "%(k3)s" not in b["update"]
    assert 'UPDATE "app"."halt_x" AS t' in b["update"] and "WHERE t.key = v.key" in b["update"]
    assert b["insert"].count("%(n)s") == 4
    for bad in (0, -1, 1001, 2.5, "yes", None):
        with pytest.raises(HaltConfigError) as e:
            AsyncPostgresStore("postgresql://unused", batch=bad)  # type: ignore[arg-type]
        assert e.value.code == "HALT_INVALID_POSTGRES_BATCH", bad
    for good, n in ((True, 32), (False, 1), (1, 1), (16, 16), (1000, 1000)):
        assert AsyncPostgresStore("postgresql://unused", batch=good).max_batch == n


def test_options_are_validated() -> None:
    for kw, code in (
        ({}, "HALT_INVALID_POSTGRES_CLIENT"),
        ({"connection_string": "x", "pool": object()}, "HALT_INVALID_POSTGRES_CLIENT"),
        ({"pool": object()}, "HALT_INVALID_POSTGRES_CLIENT"),
        ({"connection_string": "x", "table": "a;drop"}, "HALT_INVALID_POSTGRES_TABLE"),
        ({"connection_string": "x", "table": "a.b.c"}, "HALT_INVALID_POSTGRES_TABLE"),
        ({"connection_string": "x", "prefix": "a{"}, "HALT_INVALID_STORE_PREFIX"),
        ({"connection_string": "x", "cleanup_interval": -1}, "HALT_INVALID_CLEANUP_INTERVAL"),
        ({"connection_string": "x", "max_attempts": 0}, "HALT_INVALID_CAS_ATTEMPTS"),
        ({"connection_string": "x", "expiry_grace_ms": -5}, "HALT_INVALID_EXPIRY_GRACE"),
        ({"connection_string": "x", "timeout": 0}, "HALT_INVALID_TIMEOUT"),
        ({"connection_string": "x", "max_connections": 0}, "HALT_INVALID_POSTGRES_CLIENT"),
    ):
        for cls in (PostgresStore, AsyncPostgresStore):
            with pytest.raises(HaltConfigError) as e:
                cls(**kw)
            assert e.value.code == code, (cls, kw)


def test_keys_are_the_typescript_ones() -> None:
    from tests.stores.test_cas import IDS, node_keys

    store = PostgresStore("postgresql://unused", cleanup_interval=0)
    ids = [*IDS, "a\0b", "\0" * 400]
    assert node_keys([["postgres", "api:tb", i] for i in ids]) == [store.key("api:tb", i) for i in ids]
    store.close()
