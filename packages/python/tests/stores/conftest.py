"""Real Redis servers (started by scripts/services.sh; scripts/test.sh exports their addresses)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from tests.support import cluster_nodes, redis_url


def _need(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not set: scripts/test.sh starts the servers")
    pytest.skip(f'{what} not set (run: eval "$(scripts/services.sh start redis redis-cluster)")')


@pytest.fixture
def prefix() -> str:
    return f"halt-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture(params=["single", "cluster"])
def sync_client(request: Any) -> Iterator[Any]:
    if request.param == "single":
        url = redis_url()
        if url is None:
            _need("HALT_TEST_REDIS_URL")
        client: Any = redis.Redis.from_url(url)
    else:
        nodes = cluster_nodes()
        if not nodes:
            _need("HALT_TEST_REDIS_CLUSTER_NODES")
        client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes])
    yield client
    client.close()


@pytest.fixture(params=["single", "cluster"])
async def async_client(request: Any) -> AsyncIterator[Any]:
    if request.param == "single":
        url = redis_url()
        if url is None:
            _need("HALT_TEST_REDIS_URL")
        client: Any = redis.asyncio.Redis.from_url(url)
    else:
        nodes = cluster_nodes()
        if not nodes:
            _need("HALT_TEST_REDIS_CLUSTER_NODES")
        from redis.asyncio.cluster import ClusterNode as AsyncNode

        client = AsyncRedisCluster(startup_nodes=[AsyncNode(h, p) for h, p in nodes])
    yield client
    await client.aclose()
