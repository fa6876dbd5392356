"""MemcachedStore (pymemcache) and AsyncMemcachedStore (aiomcache) on a real memcached: the conformance suite, then
what is Memcached's own: key hashing, item lifetimes, generations."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from halt import HaltConfigError
from halt.core.policy import Policy, compile_policy
from halt.stores.memcached import AsyncMemcachedStore, MemcachedStore, encode, memcached_key
from tests.stores.conformance import *  # noqa: F403 (the conformance tests)
from tests.stores.conformance import Inspected, StoreHarness
from tests.stores.factories import open_memcached

T0 = 1_700_000_000_000
URL = os.environ.get("HALT_TEST_MEMCACHED_URL")
SERVICES = Path(os.environ.get("HALT_SERVICES_DIR", Path(__file__).resolve().parents[4] / ".services"))


def _need() -> str:
    if URL is None:
        if os.environ.get("CI"):
            pytest.fail("HALT_TEST_MEMCACHED_URL is not set: scripts/test.sh starts the servers")
        pytest.skip('HALT_TEST_MEMCACHED_URL not set (run: eval "$(scripts/services.sh start memcached)")')
    return URL


def memcached_pid() -> int:
    return int((SERVICES / "memcached" / "memcached.pid").read_text().strip())


def pause(pid: int, ms: float) -> None:
    """Freeze a server process for ``ms`` (SIGSTOP, then SIGCONT): it accepts nothing and answers nothing."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(ms / 1000)
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module", params=["sync", "async"])
def harness(request: Any) -> Iterator[StoreHarness]:
    url = _need()
    form = request.param
    prefix = f"halt-{uuid.uuid4().hex[:8]}:"
    timeout = "400" if form == "sync" else "2000"
    closers: dict[int, Any] = {}

    def create() -> Any:
        store, close = open_memcached(url, prefix, form, timeout)
        closers[id(store)] = close
        return store

    async def inspect(store: Any, ns: str, id: str) -> Optional[Inspected]:
        held = store.get(ns, id)
        if not store.synchronous:
            held = await held
        return None if held is None else Inspected(state=held[0])

    async def expire(store: Any, at: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, at / 1000 - time.time()) + 0.025)

    yield StoreHarness(
        name=f"{'Memcached' if form == 'sync' else 'AsyncMemcached'}Store",
        create=create,
        dispose=lambda s: closers.pop(id(s))(),
        inspect=inspect,
        expire=expire,
        # Memcached's clock ticks in whole seconds and the store adds one: an item goes within 2 s after its expiry.
        expiry_lag_ms=2000,
        stall=lambda s, ms: pause(memcached_pid(), ms),
        stall_timeout_ms=float(timeout) if form == "sync" else 150,
        worker=("tests.stores.factories:open_memcached", [url, prefix, form]),
    )


@pytest.fixture
def own() -> Iterator[MemcachedStore]:
    store = MemcachedStore(servers=_need(), prefix=f"halt-{uuid.uuid4().hex[:8]}:")
    yield store
    store.close()


def digest(k: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest()).rstrip(b"=").decode()


def test_keys_as_they_are_when_memcached_can_hold_them_else_hashed(own: MemcachedStore) -> None:
    p = own.prefix
    rule = compile_policy(Policy(name="keys", limit=1, window=60))
    assert own.key(rule.ns, "ip:203.0.113.7") == f"{p}keys:tb:{{ip:203.0.113.7}}"
    assert own.key(rule.ns, "ünï") == f"{p}keys:tb:{{ünï}}"
    for id in (" ", "a b", "line\nbreak", "tab\t", "\0", "\x7f", "x" * 250):
        assert own.key(rule.ns, id) == f"{p}#{digest(f'{p}keys:tb:{{{id}}}')}", repr(id)
    assert memcached_key("halt:", "halt:api:tb:{ü}") == "halt:api:tb:{ü}"
    assert memcached_key("halt:", f"halt:api:tb:{{{'ü' * 119}}}").startswith("halt:#")  # 252 bytes


def test_keys_are_the_typescript_ones() -> None:
    from tests.stores.test_cas import IDS, node_keys

    store = MemcachedStore(servers="127.0.0.1:1")
    cases = [["memcached", "halt:", "api:tb", i] for i in IDS]
    cases += [["memcachedNs", "halt:", "a{b}:tb"], ["memcachedNs", "halt:", "x" * 300], ["memcachedGlobal", "halt:"]]
    from halt.stores.memcached import global_key, namespace_key, state_key

    assert node_keys(cases) == [
        *(state_key("halt:", "api:tb", i) for i in IDS),
        namespace_key("halt:", "a{b}:tb"),
        namespace_key("halt:", "x" * 300),
        global_key("halt:"),
    ]
    assert store.key("api:tb", "a b") == state_key("halt:", "api:tb", "a b")


def test_the_item_is_json_as_javascript_writes_it() -> None:
    from halt.stores.cas import Next

    assert encode(Next([0, 4.5, 1_700_000_000_000.0], 1_700_000_000_500.0, 0, 1), "abc.def") == (
        b'{"s":[0,4.5,1700000000000],"e":1700000000500,"g":"abc.def"}'
    )


def test_an_item_lives_whole_seconds_at_least_its_state_expiry_plus_one(own: MemcachedStore) -> None:
    rule = compile_policy(Policy(name=f"life-{uuid.uuid4().hex[:6]}", limit=1, window=1))
    own.consume(rule.ns, "k", rule, time.time() * 1000, 1)  # fresh again in 1 s
    key = own.key(rule.ns, "k").encode()
    time.sleep(1.0)
    assert own.client.get(key) is not None
    time.sleep(2.1)
    assert own.client.get(key) is None


def test_clear_starts_a_new_generation_and_so_does_a_lost_generation_item(own: MemcachedStore) -> None:
    rule = compile_policy(Policy(name=f"gen-{uuid.uuid4().hex[:6]}", limit=1, window=60))
    own.consume(rule.ns, "k", rule, T0, 1)
    assert not own.consume(rule.ns, "k", rule, T0, 1).allowed
    # The generation item evicted (Memcached may drop any item): a new generation starts, nothing older comes back.
    own.client.delete(f"{own.prefix}{rule.ns}:gen".encode(), noreply=False)
    assert own.get(rule.ns, "k") is None
    assert own.consume(rule.ns, "k", rule, T0, 1).allowed
    own.client.delete(f"{own.prefix}gen".encode(), noreply=False)
    assert own.consume(rule.ns, "k", rule, T0, 1).allowed


async def test_async_store_hashes_what_aiomcache_refuses() -> None:
    import aiomcache

    client = aiomcache.Client("127.0.0.1", 1)
    store = AsyncMemcachedStore(client=client)
    assert store.key("api:tb", "a\u00a0b").startswith("halt:#")  # NBSP: aiomcache refuses it
    assert store.key("api:tb", "ünï") == "halt:api:tb:{ünï}"
    await client.close()


def test_options_are_validated() -> None:
    for kw, code in (
        ({}, "HALT_INVALID_MEMCACHED_CLIENT"),
        ({"servers": "x:1", "client": object()}, "HALT_INVALID_MEMCACHED_CLIENT"),
        ({"client": object()}, "HALT_INVALID_MEMCACHED_CLIENT"),
        ({"servers": "nohost"}, "HALT_INVALID_MEMCACHED_CLIENT"),
        ({"servers": []}, "HALT_INVALID_MEMCACHED_CLIENT"),
        ({"servers": "x:1", "prefix": "a b"}, "HALT_INVALID_STORE_PREFIX"),
        ({"servers": "x:1", "prefix": "a{"}, "HALT_INVALID_STORE_PREFIX"),
        ({"servers": "x:1", "timeout": 0}, "HALT_INVALID_TIMEOUT"),
        ({"servers": "x:1", "max_attempts": 0}, "HALT_INVALID_CAS_ATTEMPTS"),
    ):
        with pytest.raises(HaltConfigError) as e:
            MemcachedStore(**kw)
        assert e.value.code == code, kw
    with pytest.raises(HaltConfigError) as e:
        AsyncMemcachedStore(client=object())
    assert e.value.code == "HALT_INVALID_MEMCACHED_CLIENT"
