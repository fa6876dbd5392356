"""A Node process (the built TypeScript package) and this Python process hammer one key on one Redis at the same
time, with limit 150: exactly 150 admitted in total, for every algorithm, and for limit sets of two policies (the
binding one at 150). Same Lua, same key, same state."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any, Union

import pytest
import redis

from halt import Policy, RateLimiter
from halt.stores.redis import RedisStore
from tests.support import redis_url

HERE = Path(__file__).resolve().parent
DIST = HERE.parents[2] / "typescript" / "dist" / "index.js"
LIMIT = 150
WINDOW = 86_400  # a day: no refill or window boundary worth a unit during the run
CHECKS_EACH = 200


def _require() -> str:
    url = redis_url()
    missing = (
        "HALT_TEST_REDIS_URL"
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


def policy_of(algorithm: str) -> Union[Policy, list[Policy]]:
    """The policy the Node side builds (hammer.mjs): "a+b" is a limit set, 'tight' (a) at the limit, 'loose' (b) at
    twice the limit."""
    if "+" not in algorithm:
        return Policy(name="shared", algorithm=algorithm, limit=LIMIT, window=WINDOW)
    tight, loose = algorithm.split("+")
    return [
        Policy(name="tight", algorithm=tight, limit=LIMIT, window=WINDOW),
        Policy(name="loose", algorithm=loose, limit=2 * LIMIT, window=WINDOW),
    ]


@pytest.mark.parametrize(
    "algorithm",
    [
        "token_bucket",
        "gcra",
        "fixed_window",
        "sliding_window",
        "leaky_bucket",
        "fixed_window+sliding_window",
        "gcra+token_bucket",
        "leaky_bucket+fixed_window",
    ],
)
def test_one_limit_across_node_and_python(algorithm: str) -> None:
    url = _require()
    prefix = f"halt-x-{uuid.uuid4().hex[:8]}:"
    node = subprocess.Popen(
        ["node", str(HERE / "hammer.mjs"), url, prefix, algorithm, str(LIMIT), str(WINDOW), str(CHECKS_EACH)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    client = redis.Redis.from_url(url)
    try:
        assert node.stdout is not None and node.stdin is not None
        assert node.stdout.readline().strip() == "ready"
        limiter = RateLimiter(
            policy=policy_of(algorithm),
            store=RedisStore(client, prefix=prefix),
            on_store_error="closed",
        )
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
        out, _ = node.communicate(timeout=60)
        node_admitted, node_errors = map(int, out.strip().splitlines()[-1].split())
        assert node_errors == 0
        python_admitted = sum(admitted)
        print(f"{algorithm}: node {node_admitted} + python {python_admitted}")
        assert node_admitted + python_admitted == LIMIT, (node_admitted, python_admitted)
        # Both sides usually take a share (e.g. 108 + 42); on a starved machine one may take all, which is no error.
        assert limiter.stats().blocked == CHECKS_EACH - python_admitted  # no store errors: all answered by Redis
        p: Any = limiter.peek("hot").policies
        if p is not None:  # a set: each policy took one unit per admitted request, none for a rejected one
            assert [x.remaining for x in p] == [0, 2 * LIMIT - LIMIT]
        limiter.clear()
    finally:
        if node.poll() is None:
            node.kill()
        client.close()
