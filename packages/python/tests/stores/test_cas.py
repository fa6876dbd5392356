"""The compare-and-set loop itself (halt/stores/cas.py), on an in-process record with writers injected between a
check's read and its write: what the real servers cannot be made to do on cue. The stores are tested on servers
(the conformance suite); the key helpers are compared with the TypeScript functions."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from halt import HaltConfigError, Policy, RateLimiter
from halt.core.algorithms.kernel import evaluate
from halt.core.policy import compile_policy
from halt.stores.cas import (
    GUESSES,
    AsyncCasStore,
    CasConflictError,
    CasStore,
    Next,
    Versioned,
    Written,
    bounded_key,
    check_prefix,
    key_digest,
)

T0 = 1_700_000_000_000
ROOT = Path(__file__).resolve().parents[4]
rule = compile_policy(Policy(name="cas", limit=10, window=60))


class _Rows:
    """One server-side record per key, with a hook that runs before a write (another writer), and a latency."""

    def _setup(self, speculation: Optional[str], latency: float) -> None:
        self.rows: dict[str, Versioned[float]] = {}
        self.interfere: Optional[Callable[[str], None]] = None
        self.hand_back = speculation == "always"
        self.reads = 0
        self.latency = latency
        if speculation is not None:
            self.speculation = speculation

    def key(self, ns: str, id: str) -> str:
        return f"{ns}|{id}"

    def _do_read(self, key: str) -> Optional[Versioned[float]]:
        self.reads += 1
        r = self.rows.get(key)
        return None if r is None else Versioned(list(r.state), r.version, r.expires_at)

    def _do_write(self, key: str, next: Next, prev: Optional[Versioned[float]]) -> Written[float]:
        if self.interfere is not None:
            self.interfere(key)
        cur = self.rows.get(key)
        if prev is None:
            ok = cur is None or cur.expires_at <= next.now
        else:
            ok = cur is not None and cur.version == prev.version
        if not ok:
            if self.hand_back:
                return Written.lost(None if cur is None else Versioned(list(cur.state), cur.version, cur.expires_at))
            return Written.lost()
        version = random.random()
        self.rows[key] = Versioned(next.state, version, next.expires_at)
        return Written.won(version)


class Table(_Rows, CasStore[float]):
    def __init__(self, max_attempts: int = 100, speculation: Optional[str] = None, latency: float = 0) -> None:
        CasStore.__init__(self, "Table", max_attempts=max_attempts)
        self._setup(speculation, latency)

    def _read(self, key: str, ns: str) -> Optional[Versioned[float]]:
        if self.latency:
            time.sleep(self.latency)  # a round trip: lets other threads' checks of the key queue meanwhile
        return self._do_read(key)

    def _write(self, key: str, ns: str, next: Next, prev: Optional[Versioned[float]]) -> Written[float]:
        if self.latency:
            time.sleep(self.latency)
        return self._do_write(key, next, prev)

    def _remove(self, key: str, ns: str) -> None:
        self.rows.pop(key, None)

    def _remove_all(self, ns: Optional[str]) -> None:
        self.rows.clear()


class AsyncTable(_Rows, AsyncCasStore[float]):
    def __init__(self, max_attempts: int = 100, speculation: Optional[str] = None) -> None:
        AsyncCasStore.__init__(self, "AsyncTable", max_attempts=max_attempts)
        self._setup(speculation, 0)

    async def _read(self, key: str, ns: str) -> Optional[Versioned[float]]:
        await asyncio.sleep(0)  # a round trip: other tasks run meanwhile
        return self._do_read(key)

    async def _write(self, key: str, ns: str, next: Next, prev: Optional[Versioned[float]]) -> Written[float]:
        await asyncio.sleep(0)
        return self._do_write(key, next, prev)

    async def _remove(self, key: str, ns: str) -> None:
        self.rows.pop(key, None)

    async def _remove_all(self, ns: Optional[str]) -> None:
        self.rows.clear()


def other_takes(t: _Rows, units: float, times: int = 1) -> None:
    """Another process takes ``units`` from the key just before this process's next ``times`` writes."""
    left = [times]

    def interfere(key: str) -> None:
        if left[0] == 0:
            return
        left[0] -= 1
        r = t.rows.get(key)
        state, o = evaluate(None if r is None else r.state, T0, units, rule)
        t.rows[key] = Versioned(state, -1.0, o.expires_at_ms)

    t.interfere = interfere


def test_a_writer_between_the_read_and_the_write_makes_the_check_start_over_from_what_it_wrote() -> None:
    t = Table()
    t.consume(rule.ns, "k", rule, T0, 1)
    other_takes(t, 4)
    o = t.consume(rule.ns, "k", rule, T0, 1)
    assert o.remaining == 4  # 10 - 1 - 4 - 1: nothing lost
    assert (t.counters.conflicts, t.counters.writes) == (1, 3)


async def test_the_async_form_runs_the_same_loop() -> None:
    t = AsyncTable()
    await t.consume(rule.ns, "k", rule, T0, 1)
    other_takes(t, 4)
    assert (await t.consume(rule.ns, "k", rule, T0, 1)).remaining == 4
    assert (t.counters.conflicts, t.counters.writes, t.counters.reads) == (1, 3, 3)
    assert (await t.peek(rule.ns, "k", rule, T0)).remaining == 4
    await t.reset(rule.ns, "k")
    assert (await t.peek(rule.ns, "k", rule, T0)).remaining == 10


def test_gives_up_after_max_attempts_with_cas_conflict_error_which_the_limiter_answers() -> None:
    t = Table(max_attempts=5)
    t.interfere = lambda key: t.rows.__setitem__(key, Versioned([0, 1, T0], random.random(), T0 + 1))
    with pytest.raises(CasConflictError) as e:
        t.consume(rule.ns, "k", rule, T0, 1)
    assert e.value.attempts == 5 and "5 conditional writes" in str(e.value)
    assert t.counters.writes == 5
    errors: list[Any] = []

    class Errors:
        def on_error(self, event: Any) -> None:
            errors.append(event.error)

    limiter = RateLimiter(
        store=t, policy=Policy(name="cas", limit=10, window=60), on_store_error="closed", telemetry=Errors()
    )
    d = limiter.check("k")
    assert (d.allowed, d.reason) == (False, "store_error")
    assert isinstance(errors[0], CasConflictError)


async def test_async_checks_of_one_key_go_as_one_group() -> None:
    t = AsyncTable()
    await t.consume(rule.ns, "warm", rule, T0, 1)
    reads, writes = t.counters.reads, t.counters.writes
    outs = await asyncio.gather(*(t.consume(rule.ns, "k", rule, T0, 1) for _ in range(100)))
    assert sum(o.allowed for o in outs) == 10
    assert [o.remaining for o in outs[:10]] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    # The first check goes alone (nothing was in flight), the 99 others wait and go together.
    assert (t.counters.reads - reads, t.counters.writes - writes) == (2, 2)
    assert t._queues == {}


async def test_a_cancelled_async_check_strands_no_other_check_of_its_key() -> None:
    t = AsyncTable()
    first = asyncio.ensure_future(t.consume(rule.ns, "k", rule, T0, 1))
    await asyncio.sleep(0)  # the first check is in flight
    waiting = [asyncio.ensure_future(t.consume(rule.ns, "k", rule, T0, 1)) for _ in range(5)]
    await asyncio.sleep(0)
    first.cancel()
    waiting[0].cancel()  # a waiter whose caller gave up
    outs = await asyncio.gather(*waiting[1:])
    assert all(o.allowed for o in outs)
    assert t._queues == {}


def test_threads_of_one_process_do_not_conflict_on_a_key() -> None:
    # 16 threads x 25 checks on one hot key, each round trip 1 ms: the threads queue behind the one in flight and go
    # as groups (run by the first waiting thread), so this process never conflicts with itself.
    t = Table(latency=0.001)
    big = compile_policy(Policy(name="big", limit=150, window=3600))
    admitted = [0] * 16
    start = threading.Barrier(16)

    def lane(i: int) -> None:
        start.wait()
        for _ in range(25):
            if t.consume(big.ns, "hot", big, T0, 1).allowed:
                admitted[i] += 1

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(admitted) == 150
    assert t.counters.conflicts == 0
    assert t.counters.checks == 400
    assert t.counters.writes < 400 / 2  # grouped: far fewer writes than checks
    assert t._queues == {}


def test_a_failing_group_answers_every_thread_of_it_with_the_error() -> None:
    t = Table(latency=0.002)
    boom = RuntimeError("server gone")
    calls = [0]

    def fail(key: str) -> None:
        calls[0] += 1
        if calls[0] > 1:
            raise boom

    t.interfere = fail
    results: list[Any] = []
    start = threading.Barrier(8)

    def lane() -> None:
        start.wait()
        try:
            results.append(t.consume(rule.ns, "k", rule, T0, 1).allowed)
        except RuntimeError as e:
            results.append(e)

    threads = [threading.Thread(target=lane) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 8 and results.count(True) >= 1 and boom in results
    assert t._queues == {}


def test_checks_queued_behind_a_failing_group_get_its_error_without_a_second_wait() -> None:
    """A thread cannot be abandoned from outside: the checks that queued while a group's write failed are answered
    with that error at once (the limiter's failure policy takes them), not after an attempt of their own, which would
    make them wait for two store timeouts."""
    t = Table(latency=0.05)
    boom = RuntimeError("server gone")
    writes = [0]

    def fail(key: str) -> None:
        writes[0] += 1
        raise boom

    t.interfere = fail
    results: list[Any] = []

    def lane() -> None:
        try:
            results.append(t.consume(rule.ns, "k", rule, T0, 1))
        except RuntimeError as e:
            results.append(e)

    first = threading.Thread(target=lane)
    first.start()
    time.sleep(0.02)  # the first check is in flight: the others queue behind it
    others = [threading.Thread(target=lane) for _ in range(5)]
    for th in others:
        th.start()
    for th in [first, *others]:
        th.join()
    assert results == [boom] * 6
    assert writes[0] == 1
    assert t._queues == {}


def test_a_rejection_that_changes_nothing_writes_nothing() -> None:
    t = Table()
    fw = compile_policy(Policy(name="fw", limit=1, window=60, algorithm="fixed_window"))
    t.consume(fw.ns, "k", fw, T0, 1)
    writes = t.counters.writes
    for i in range(5):
        assert not t.consume(fw.ns, "k", fw, T0 + i, 1).allowed
    assert t.counters.writes == writes


def test_speculative_the_first_write_needs_no_read_and_a_lost_one_hands_back_the_record() -> None:
    t = Table(speculation="always")
    t.consume(rule.ns, "k", rule, T0, 1)  # a new key: one write
    t.consume(rule.ns, "k", rule, T0, 1)  # the record this store wrote: one write
    assert t.reads == 0 and t.counters.writes == 2
    t.rows["cas:tb|k"] = Versioned([0, 5, T0], 42.0, T0 + 30_000)  # another process
    assert t.consume(rule.ns, "k", rule, T0, 1).remaining == 4
    assert t.reads == 0
    assert (t.counters.writes, t.counters.conflicts) == (4, 1)


def test_remembers_the_last_record_of_up_to_10000_keys_refreshing_one_evicts_no_other() -> None:
    t = Table(speculation="always")
    big = compile_policy(Policy(name="rr", limit=1000, window=60))
    for i in range(GUESSES):
        t.consume(big.ns, f"k{i}", big, T0, 1)
    t.consume(big.ns, "k9999", big, T0 + 1, 1)  # held: refreshed, nothing evicted
    writes = t.counters.writes
    t.consume(big.ns, "k0", big, T0 + 1, 1)  # the oldest, still held: guessed right
    assert t.counters.writes - writes == 1 and t.counters.conflicts == 0
    t.consume(big.ns, "k10000", big, T0 + 1, 1)  # a new key: the oldest (k1) makes room
    t.consume(big.ns, "k1", big, T0 + 1, 1)
    assert t.counters.conflicts == 1  # k1's guess was gone: the first write lost, the record came back with it


def test_a_guess_that_has_expired_goes_as_an_insert_one_write_whether_expiry_deleted_the_record_or_not() -> None:
    for speculation in ("always", "adaptive"):
        t = Table(speculation=speculation)
        r = compile_policy(Policy(name="idle", limit=5, window=10))  # a token bucket: fresh again 2 s after a check
        t.consume(r.ns, "gone", r, T0, 1)
        t.consume(r.ns, "kept", r, T0, 1)
        del t.rows[t.key(r.ns, "gone")]  # deleted by expiry (a TTL, cleanup_expired())
        before = (t.reads, t.counters.writes)
        for id in ("gone", "kept"):
            assert t.consume(r.ns, id, r, T0 + 5_000, 1).remaining == 4
        assert (t.reads - before[0], t.counters.writes - before[1], t.counters.conflicts) == (0, 2, 0)
        # Not expired yet, and deleted (a reset by another process): the write on its version finds nothing, and the
        # check goes again from none.
        del t.rows[t.key(r.ns, "gone")]
        assert t.consume(r.ns, "gone", r, T0 + 5_001, 1).remaining == 4
        assert t.counters.conflicts == 1


def test_adaptive_guesses_while_they_hit_and_reads_first_once_another_writer_keeps_winning() -> None:
    t = Table(speculation="adaptive")
    # Never rejects, so every check writes; a fixed window, so the state stays live (and a guess is not an insert).
    big = compile_policy(Policy(name="big", limit=1_000_000, window=60, algorithm="fixed_window"))
    for i in range(20):
        t.consume(big.ns, f"k{i % 4}", big, T0 + i, 1)
    assert t.reads == 0 and t.counters.writes == 20  # one process owns the keys: every guess hits

    def cost() -> int:
        before = t.reads + t.counters.writes
        for key, r in list(t.rows.items()):  # another process writes every key between two checks of this one
            t.rows[key] = Versioned(r.state, random.random(), r.expires_at)
        t.consume(big.ns, "k0", big, T0 + 100, 1)
        return t.reads + t.counters.writes - before

    assert cost() == 3
    checks = 1
    while t.guess_hit_rate > 0.5:
        assert cost() == 3
        checks += 1
    assert checks < 50
    assert cost() == 2  # no more guessing: read, then write
    for _ in range(100):  # the reads keep scoring: once this process owns its keys again, guessing resumes
        if t.guess_hit_rate > 0.5:
            break
        t.consume(big.ns, "k0", big, T0 + 200, 1)
    assert t.guess_hit_rate > 0.5
    reads = t.reads
    t.consume(big.ns, "k0", big, T0 + 300, 1)
    assert t.reads == reads


def test_options_are_checked() -> None:
    for kw, code in (
        ({"max_attempts": 0}, "HALT_INVALID_CAS_ATTEMPTS"),
        ({"max_attempts": 1.5}, "HALT_INVALID_CAS_ATTEMPTS"),
        ({"max_attempts": True}, "HALT_INVALID_CAS_ATTEMPTS"),
        ({"expiry_grace_ms": -1}, "HALT_INVALID_EXPIRY_GRACE"),
        ({"expiry_grace_ms": 0.5}, "HALT_INVALID_EXPIRY_GRACE"),
    ):
        with pytest.raises(HaltConfigError) as e:
            CasStore("Table", **kw)
        assert e.value.code == code and "Table" in str(e.value)
    for bad in (None, 5, "a{b", "a}", "x" * 101, "ü" * 51):
        with pytest.raises(HaltConfigError) as e:
            check_prefix(bad, "S")
        assert e.value.code == "HALT_INVALID_STORE_PREFIX"
    assert check_prefix("", "S") == "" and check_prefix("ü" * 50, "S") == "ü" * 50
    for bad in ("a b", "a\tb", "a\x7f"):
        assert check_prefix(bad, "S") == bad
        with pytest.raises(HaltConfigError):
            check_prefix(bad, "S", memcached=True)


# Fixed outputs of the TypeScript functions (also compared live below when node is there).
def test_key_helpers_give_the_typescript_outputs() -> None:
    assert key_digest("halt:api:tb:{ip:203.0.113.7}") == "JlzFIgaiu-P_ICkowm_HlS9uEeMBybJsjD8uOWvfOhA"
    # A lone surrogate is encoded as U+FFFD, as JavaScript does.
    assert key_digest("emoji:\U0001f6a6\ud800x") == "eewiN2NQjTZ25StJEfdElxK879RRrtinHMUwSrx-qMs"
    assert bounded_key("halt:", "api:tb", "a" * 2000) == "halt:api:tb:{%#ktD8pkrG_adXZxE-X-I5YcmayaspBQShDLUo7zZFuYU}"
    assert (
        bounded_key("halt:", "a{b}:tb", "\U0001f6a6" * 300)
        == "halt:a%7Bb%7D:tb:{%#DzD0Z3FxrqJbgraIuwukT-L_3UyDEDONm8eIGFNlqp8}"
    )
    assert bounded_key("halt:", "api:tb", "\U0001f6a6" * 200) == "halt:api:tb:{" + "\U0001f6a6" * 200 + "}"


NODE_KEYS = Path(__file__).resolve().parent / "node_keys.mts"
TSX = ROOT / "node_modules" / ".bin" / "tsx"


def node_keys(inputs: list[Any]) -> list[Any]:
    """The TypeScript key functions (from packages/typescript/src, through tsx) on ``inputs``."""
    if shutil.which("node") is None or not TSX.exists():
        if os.environ.get("CI"):
            pytest.fail("node and tsx (npm ci) are needed")
        pytest.skip("node or tsx missing")
    out = subprocess.run(
        [str(TSX), str(NODE_KEYS)], input=json.dumps(inputs), capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


IDS = [
    "",
    "ip:203.0.113.7",
    "a" * 1000,
    "a" * 1010,
    "ü" * 600,
    "\U0001f6a6" * 254,
    "\U0001f6a6" * 256,
    "{}%",
    "x}y{z" * 300,
    "tab\tand\0nul",
    "has space",
    "ü" * 120,
    "x" * 240,
    "x" * 230,
]


def test_key_helpers_agree_with_the_typescript_functions() -> None:
    from halt.stores.cas import has_space_or_control

    cases = [["bounded", "halt:", ns, i] for ns in ("api:tb", "{ns}%:sw") for i in IDS]
    cases += [["digest", i] for i in IDS]
    cases += [["space", i] for i in IDS]
    got = node_keys(cases)
    want = [
        bounded_key(c[1], c[2], c[3]) if c[0] == "bounded" else key_digest(c[1]) if c[0] == "digest" else None
        for c in cases
    ]
    for c, g, w in zip(cases, got, want):
        if c[0] == "space":
            assert g == has_space_or_control(c[1]), c
        else:
            assert g == w, c
