"""A Node process (the built TypeScript package) and this Python process hammer one key of one PostgreSQL table, or
of one Memcached server, at the same time, with limit 150: exactly 150 admitted in total, for every algorithm. The
same table and rows, the same items and generations; then each side reads the state the other wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from halt import Policy, RateLimiter

HERE = Path(__file__).resolve().parent
DIST = HERE.parents[2] / "typescript" / "dist" / "index.js"
LIMIT = 150
WINDOW = 86_400  # a day: no refill or window boundary worth a unit during the run
CHECKS_EACH = 200
NUMBERS = (LIMIT, WINDOW, CHECKS_EACH)
ALGORITHMS = ["token_bucket", "gcra", "fixed_window", "sliding_window", "leaky_bucket"]


def _require(var: str) -> str:
    url = os.environ.get(var)
    missing = (
        var
        if url is None
        else "node"
        if shutil.which("node") is None
        else "packages/typescript/dist (npm run build -w halt)"
        if not DIST.exists()
        else None
    )
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing: scripts/test.sh provides it")
        pytest.skip(f"{missing} is missing")
    assert url is not None
    return url


def hammer(kind: str, conn: str, where: str, prefix: str, algorithm: str, limiter: RateLimiter) -> tuple[int, int]:
    """Node's checks and this process's (4 threads) on the key ``hot`` at once: (node admitted, python admitted)."""
    node = subprocess.Popen(
        ["node", str(HERE / "hammer_cas.mjs"), kind, conn, where, prefix, algorithm, *map(str, NUMBERS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    try:
        assert node.stdout is not None and node.stdin is not None
        assert node.stdout.readline().strip() == "ready"
        limiter.peek("hot")
        admitted = [0] * 4
        start = threading.Barrier(5)

        def lane(i: int) -> None:
            start.wait()
            for _ in range(CHECKS_EACH // 4):
                if limiter.check("hot").allowed:
                    admitted[i] += 1

        threads = [threading.Thread(target=lane, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        node.stdin.write("go\n")
        node.stdin.flush()
        start.wait()
        for t in threads:
            t.join()
        out, _ = node.communicate(timeout=120)
        node_admitted, node_errors = map(int, out.strip().splitlines()[-1].split())
        assert node_errors == 0
        return node_admitted, sum(admitted)
    finally:
        if node.poll() is None:
            node.kill()


def check_total(algorithm: str, store: Any, limiter: RateLimiter, node: int, python: int) -> None:
    c = store.counters
    print(f"{algorithm}: node {node} + python {python}; python conflicts {c.conflicts}, locked {c.locked}")
    assert node + python == LIMIT, (node, python)
    assert limiter.stats().blocked == CHECKS_EACH - python  # no store errors: every check answered by the store
    assert limiter.peek("hot").remaining == 0  # the state Node wrote last, read by Python


@pytest.fixture(scope="module")
def pg_table() -> Any:
    url = _require("HALT_TEST_POSTGRES_URL")
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

    url = _require("HALT_TEST_MEMCACHED_URL")
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
