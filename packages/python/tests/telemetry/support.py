"""Helpers for the telemetry tests: a sink that records every event, the Redis test server, a Redis that is down."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from halt.telemetry import DecisionEvent, StoreErrorEvent
from tests.support import redis_url


class Recorder:
    """Every hook, each event kept as (hook, event)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_check(self, e: DecisionEvent) -> None:
        self.events.append(("check", e))

    def on_allowed(self, e: DecisionEvent) -> None:
        self.events.append(("allowed", e))

    def on_blocked(self, e: DecisionEvent) -> None:
        self.events.append(("blocked", e))

    def on_near_limit(self, e: DecisionEvent) -> None:
        self.events.append(("near_limit", e))

    def on_error(self, e: StoreErrorEvent) -> None:
        self.events.append(("error", e))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def needs_redis() -> str:
    url = redis_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("HALT_TEST_REDIS_URL is not set: scripts/test.sh starts the servers")
        pytest.skip('HALT_TEST_REDIS_URL not set (run: eval "$(scripts/services.sh start redis)")')
    return url


def closed_port() -> int:
    """A loopback port nothing listens on: a store that is down."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def dead_redis() -> Any:
    """A sync redis-py client to nothing, failing at once (no retries)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(port=closed_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


def dead_async_redis() -> Any:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis(port=closed_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
