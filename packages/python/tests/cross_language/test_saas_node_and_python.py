"""Quotas and penalties shared by a Node process (the built TypeScript package) and this Python process, on one Redis
and on one PostgreSQL table: one quota key consumed from both sides at once admits exactly the limit, violations from
both sides are all counted, and a penalty recorded by one SDK is the one the other reads. Same kernels, same keys,
same state."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from halt import PenaltyConfig, PenaltyManager, Quota, QuotaManager
from halt.stores.redis import RedisStore
from tests.cross_language.support import HERE, require
from tests.support import redis_url as _redis_url

LIMIT = 150
CHECKS_EACH = 200
#: The Node side's configuration (saas_hammer.mjs): a penalty at $THRESHOLD points (3), 10 minutes, a decay too slow
#: to matter during a test.
CONFIG = PenaltyConfig(threshold=3, duration=600, decay_rate=1e-6)


@dataclass
class Backend:
    """One shared server: its URL, a Python store on a key space of its own, the same for the Node side."""

    url: str
    store: Any
    prefix: str
    #: The Node side's environment beyond this process's (the PostgreSQL table).
    env: dict[str, str]

    def node(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["node", str(HERE / "saas_hammer.mjs"), self.url, self.prefix, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE,
            env={**os.environ, **self.env, **env},
        )

    def node_json(self, *args: str) -> dict[str, Any]:
        out, _ = self.node(*args).communicate(timeout=60)
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(params=["redis", "postgres"])
def backend(request: Any) -> Iterator[Backend]:
    redis_url = require(_redis_url(), "HALT_TEST_REDIS_URL")
    if request.param == "redis":
        prefix = f"halt-xs-{uuid.uuid4().hex[:8]}:"
        client = redis.Redis.from_url(redis_url)
        store = RedisStore(client, prefix=prefix)
        yield Backend(redis_url, store, prefix, {})
        store.clear()
        client.close()
        return
    url = os.environ.get("HALT_TEST_POSTGRES_URL")
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("HALT_TEST_POSTGRES_URL is not set: scripts/test.sh starts the servers")
        pytest.skip("HALT_TEST_POSTGRES_URL is not set")
    from halt.stores.postgres import PostgresStore

    table = f"halt_x_{uuid.uuid4().hex[:8]}"
    pg = PostgresStore(url, table=table, cleanup_interval=0)
    yield Backend(url, pg, "halt:", {"TABLE": table})
    import psycopg

    pg.close()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {table}")


def run_together(proc: subprocess.Popen[str], lanes: list[threading.Thread]) -> str:
    """Start the Python lanes and the Node process at once; the Node process's last line."""
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        for t in lanes:
            t.start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        for t in lanes:
            t.join()
        out, _ = proc.communicate(timeout=60)
        return out.strip().splitlines()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_one_quota_across_node_and_python(backend: Backend) -> None:
    quotas = QuotaManager(backend.store, time_zone="Europe/Berlin")
    quota = Quota(name="shared_calls", limit=LIMIT, period="monthly")
    quotas.check_quota("hot", quota)  # connect (and create the table) before the start
    admitted = [0] * 4
    start = threading.Barrier(4)

    def lane(i: int) -> None:
        start.wait()
        for _ in range(CHECKS_EACH // 4):
            admitted[i] += quotas.consume_quota("hot", quota).allowed

    proc = backend.node("quota", str(LIMIT), str(CHECKS_EACH))
    last = run_together(proc, [threading.Thread(target=lane, args=(i,)) for i in range(4)])
    node_admitted, node_errors = map(int, last.split())
    assert node_errors == 0
    print(f"quota: node {node_admitted} + python {sum(admitted)}")
    assert node_admitted + sum(admitted) == LIMIT
    assert quotas.check_quota("hot", quota).quota.used == LIMIT


def test_violations_from_both_sides_are_all_counted(backend: Backend) -> None:
    config = PenaltyConfig(threshold=1_000_000, duration=600, decay_rate=1e-6)
    penalties = PenaltyManager(config, store=backend.store)
    penalties.get_penalty("abuser")

    def lane() -> None:
        for _ in range(100):
            penalties.record_violation("abuser")

    proc = backend.node("violations", "200", THRESHOLD="1000000")
    assert run_together(proc, [threading.Thread(target=lane) for _ in range(2)]) == "done"
    assert abs(penalties.get_penalty("abuser").abuse_score - 400) < 1e-3


def test_a_penalty_recorded_by_one_sdk_is_seen_by_the_other(backend: Backend) -> None:
    penalties = PenaltyManager(CONFIG, store=backend.store)
    # Python records, Node reads.
    penalties.record_violation("ip:203.0.113.7", 2)
    seen = backend.node_json("get", "ip:203.0.113.7")
    assert seen["abuseScore"] > 1.999 and not seen["active"] and seen["offences"] == 0
    mine = penalties.record_violation("ip:203.0.113.7")
    assert mine.is_active()
    seen = backend.node_json("get", "ip:203.0.113.7")
    assert seen["active"] and seen["offences"] == 1
    assert abs(seen["penaltyUntilMs"] - mine.penalty_until_ms) < 5_000  # each computes it from its own now
    # Node records, Python reads.
    backend.node_json("record", "ip:198.51.100.1", "3")
    p = penalties.get_penalty("ip:198.51.100.1")
    assert p.is_active() and p.offences == 1 and abs(p.abuse_score - 3) < 1e-3
