"""What the cross-language tests share: a Node process (the built TypeScript package, one of the ``*.mjs`` here, which
end in race.mjs) and this Python process check one key ``hot`` at the same time, limit 150."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable, Optional

import pytest

from halt import RateLimiter

HERE = Path(__file__).resolve().parent
DIST = HERE.parents[2] / "typescript" / "dist" / "index.js"
LIMIT = 150
WINDOW = 86_400  # a day: no refill or window boundary worth a unit during the run
CHECKS_EACH = 200
ALGORITHMS = ["token_bucket", "gcra", "fixed_window", "sliding_window", "leaky_bucket"]


def require(url: Optional[str], var: str) -> str:
    """``url`` (the server ``var`` names), once node and the built package are there too: else skip, or fail in CI."""
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


def race(
    script: str, node_args: list[str], algorithm: str, python_side: Callable[[Callable[[], None]], int]
) -> tuple[int, int]:
    """Start ``node <script> <node_args> <algorithm> LIMIT WINDOW CHECKS_EACH``, let ``python_side(go)`` make its
    CHECKS_EACH checks (calling ``go()`` once its lanes are ready, which starts Node); returns (admitted by Node,
    admitted by Python). Node must report no store errors."""
    node = subprocess.Popen(
        ["node", str(HERE / script), *node_args, algorithm, str(LIMIT), str(WINDOW), str(CHECKS_EACH)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},  # the AWS SDK's notice about Node versions to come
    )
    try:
        assert node.stdout is not None and node.stdin is not None
        assert node.stdout.readline().strip() == "ready"
        stdin = node.stdin

        def go() -> None:
            stdin.write("go\n")
            stdin.flush()

        python_admitted = python_side(go)
        out, _ = node.communicate(timeout=120)
        node_admitted, node_errors = map(int, out.strip().splitlines()[-1].split())
        assert node_errors == 0
        print(f"{algorithm}: node {node_admitted} + python {python_admitted}")
        return node_admitted, python_admitted
    finally:
        if node.poll() is None:
            node.kill()


def threads(limiter: RateLimiter) -> Callable[[Callable[[], None]], int]:
    """Python's side: 4 threads, CHECKS_EACH checks in all, started together with Node."""

    def side(go: Callable[[], None]) -> int:
        limiter.peek("hot")
        admitted = [0] * 4
        start = threading.Barrier(5)

        def lane(i: int) -> None:
            start.wait()
            for _ in range(CHECKS_EACH // 4):
                if limiter.check("hot").allowed:
                    admitted[i] += 1

        workers = [threading.Thread(target=lane, args=(i,)) for i in range(4)]
        for t in workers:
            t.start()
        go()
        start.wait()
        for t in workers:
            t.join()
        return sum(admitted)

    return side
