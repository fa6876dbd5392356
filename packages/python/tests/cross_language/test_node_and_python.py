"""A Node process (the built TypeScript package) and this Python process hammer one key on one Redis at the same
time, with limit 150: exactly 150 admitted in total, for every algorithm, and for limit sets of two policies (the
binding one at 150). Same Lua, same key, same state."""

from __future__ import annotations

import uuid
from typing import Any, Union

import pytest
import redis

from halt import Policy, RateLimiter
from halt.stores.redis import RedisStore
from tests.cross_language.support import CHECKS_EACH, LIMIT, WINDOW, race, require, threads
from tests.support import redis_url


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
    url = require(redis_url(), "HALT_TEST_REDIS_URL")
    prefix = f"halt-x-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(url)
    try:
        limiter = RateLimiter(
            policy=policy_of(algorithm),
            store=RedisStore(client, prefix=prefix),
            on_store_error="closed",
        )
        node_admitted, python_admitted = race("hammer.mjs", [url, prefix], algorithm, threads(limiter))
        assert node_admitted + python_admitted == LIMIT, (node_admitted, python_admitted)
        # Both sides usually take a share (e.g. 108 + 42); on a starved machine one may take all, which is no error.
        assert limiter.stats().blocked == CHECKS_EACH - python_admitted  # no store errors: all answered by Redis
        p: Any = limiter.peek("hot").policies
        if p is not None:  # a set: each policy took one unit per admitted request, none for a rejected one
            assert [x.remaining for x in p] == [0, 2 * LIMIT - LIMIT]
        limiter.clear()
    finally:
        client.close()
