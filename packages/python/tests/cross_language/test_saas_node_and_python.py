"""Quotas and penalties shared by a Node process (the built TypeScript package) and this Python process on one Redis:
one quota key consumed from both sides at once admits exactly the limit, N violations from both sides give a score
of exactly N, and a penalty recorded by one SDK is the one the other reads. Same Lua, same keys, same state."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from typing import Any

import redis

from halt import PenaltyConfig, PenaltyManager, Quota, QuotaManager
from halt.stores.redis import RedisStore
from tests.cross_language.test_node_and_python import HERE, _require

LIMIT = 150
CHECKS_EACH = 200
#: The Node side's configuration (saas_hammer.mjs): a penalty at 3 points, 10 minutes, a decay too slow to matter.
CONFIG = PenaltyConfig(threshold=3, duration=600, decay_rate=1e-6)


def node(url: str, prefix: str, *args: str, env: Any = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["node", str(HERE / "saas_hammer.mjs"), url, prefix, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,
        env=env,
    )


def node_json(url: str, prefix: str, *args: str) -> dict[str, Any]:
    out, _ = node(url, prefix, *args).communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_together(proc: subprocess.Popen[str], lanes: list[threading.Thread]) -> str:
    """Start the Python lanes and the Node process at once; the Node process's last line."""
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    for t in lanes:
        t.start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    for t in lanes:
        t.join()
    out, _ = proc.communicate(timeout=60)
    return out.strip().splitlines()[-1]


def test_one_quota_across_node_and_python() -> None:
    url = _require()
    prefix = f"halt-xq-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(url)
    quotas = QuotaManager(RedisStore(client, prefix=prefix), time_zone="Europe/Berlin")
    quota = Quota(name="shared_calls", limit=LIMIT, period="monthly")
    quotas.check_quota("hot", quota)
    admitted = [0] * 4
    start = threading.Barrier(4)

    def lane(i: int) -> None:
        start.wait()
        for _ in range(CHECKS_EACH // 4):
            admitted[i] += quotas.consume_quota("hot", quota).allowed

    proc = node(url, prefix, "quota", str(LIMIT), str(CHECKS_EACH))
    try:
        last = run_together(proc, [threading.Thread(target=lane, args=(i,)) for i in range(4)])
        node_admitted, node_errors = map(int, last.split())
        assert node_errors == 0
        print(f"quota: node {node_admitted} + python {sum(admitted)}")
        assert node_admitted + sum(admitted) == LIMIT
        assert quotas.check_quota("hot", quota).quota.used == LIMIT
    finally:
        if proc.poll() is None:
            proc.kill()
        RedisStore(client, prefix=prefix).clear()
        client.close()


def test_violations_from_both_sides_are_all_counted() -> None:
    url = _require()
    prefix = f"halt-xv-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(url)
    config = PenaltyConfig(threshold=1_000_000, duration=600, decay_rate=1e-6)
    penalties = PenaltyManager(config, store=RedisStore(client, prefix=prefix))

    def lane() -> None:
        for _ in range(100):
            penalties.record_violation("abuser")

    proc = node(url, prefix, "violations", "200", env={**os.environ, "THRESHOLD": "1000000"})
    try:
        assert run_together(proc, [threading.Thread(target=lane) for _ in range(2)]) == "done"
        assert abs(penalties.get_penalty("abuser").abuse_score - 400) < 1e-3
    finally:
        if proc.poll() is None:
            proc.kill()
        RedisStore(client, prefix=prefix).clear()
        client.close()


def test_a_penalty_recorded_by_one_sdk_is_seen_by_the_other() -> None:
    url = _require()
    prefix = f"halt-xp-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(url)
    penalties = PenaltyManager(CONFIG, store=RedisStore(client, prefix=prefix))
    try:
        # Python records, Node reads.
        penalties.record_violation("ip:203.0.113.7", 2)
        seen = node_json(url, prefix, "get", "ip:203.0.113.7")
        assert seen["abuseScore"] > 1.999 and not seen["active"] and seen["offences"] == 0
        mine = penalties.record_violation("ip:203.0.113.7")
        assert mine.is_active()
        seen = node_json(url, prefix, "get", "ip:203.0.113.7")
        assert seen["active"] and seen["offences"] == 1
        assert abs(seen["penaltyUntilMs"] - mine.penalty_until_ms) < 5_000  # each computes it from its own now
        # Node records, Python reads.
        node_json(url, prefix, "record", "ip:198.51.100.1", "3")
        p = penalties.get_penalty("ip:198.51.100.1")
        assert p.is_active() and p.offences == 1 and abs(p.abuse_score - 3) < 1e-3
    finally:
        RedisStore(client, prefix=prefix).clear()
        client.close()
