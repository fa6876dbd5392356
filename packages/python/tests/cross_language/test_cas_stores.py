"""A Node process (the built TypeScript package) and this Python process hammer one key of one PostgreSQL table, or
of one Memcached server, at the same time, with limit 150: exactly 150 admitted in total, for every algorithm. The
same table and rows, the same items and generations; then each side reads the state the other wrote."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from halt import Policy, RateLimiter
from tests.cross_language.support import ALGORITHMS, CHECKS_EACH, LIMIT, WINDOW, race, require, threads


def hammer(kind: str, conn: str, where: str, prefix: str, algorithm: str, limiter: RateLimiter) -> tuple[int, int]:
    """Node's checks and this process's (4 threads) on the key ``hot`` at once: (node admitted, python admitted)."""
    return race("hammer_stores.mjs", [kind, conn, where, prefix], algorithm, threads(limiter))


def check_total(algorithm: str, store: Any, limiter: RateLimiter, node: int, python: int) -> None:
    c = store.counters
    print(f"{algorithm}: node {node} + python {python}; python conflicts {c.conflicts}, locked {c.locked}")
    assert node + python == LIMIT, (node, python)
    assert limiter.stats().blocked == CHECKS_EACH - python  # no store errors: every check answered by the store
    assert limiter.peek("hot").remaining == 0  # the state Node wrote last, read by Python


@pytest.fixture(scope="module")
def pg_table() -> Any:
    url = require(os.environ.get("HALT_TEST_POSTGRES_URL"), "HALT_TEST_POSTGRES_URL")
    table = f"halt_x_{uuid.uuid4().hex[:8]}"
    yield url, table
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_limit_across_node_and_python_on_postgres(algorithm: str, pg_table: Any) -> None:
    from halt.stores.postgres import PostgresStore

    url, table = pg_table
    prefix = f"halt-x-{uuid.uuid4().hex[:8]}:"
    store = PostgresStore(url, table=table, prefix=prefix, cleanup_interval=0, timeout=5000)
    limiter = RateLimiter(
        policy=Policy(name="shared", algorithm=algorithm, limit=LIMIT, window=WINDOW),
        store=store,
        on_store_error="closed",
    )
    node, python = hammer("postgres", url, table, prefix, algorithm, limiter)
    check_total(algorithm, store, limiter, node, python)
    limiter.clear()
    store.close()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_limit_across_node_and_python_on_memcached(algorithm: str) -> None:
    from halt.stores.memcached import MemcachedStore

    url = require(os.environ.get("HALT_TEST_MEMCACHED_URL"), "HALT_TEST_MEMCACHED_URL")
    prefix = f"halt-x-{uuid.uuid4().hex[:8]}:"
    store = MemcachedStore(servers=url, prefix=prefix, timeout=5000)
    limiter = RateLimiter(
        policy=Policy(name="shared", algorithm=algorithm, limit=LIMIT, window=WINDOW),
        store=store,
        on_store_error="closed",
    )
    node, python = hammer("memcached", url, "-", prefix, algorithm, limiter)
    check_total(algorithm, store, limiter, node, python)
    limiter.clear()  # a new generation: Node's items count as absent for both
    assert limiter.peek("hot").remaining == LIMIT
    store.close()
