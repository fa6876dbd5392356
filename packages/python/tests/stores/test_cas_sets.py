"""Limit sets on the compare-and-set loop (docs/sets.md), on the in-process records of test_cas.py with another
writer injected on cue: the tightest policy is written first, a conflict before anything is taken starts over, one
after goes on key by key, and units taken for a request then rejected are counted (``counters.set_leaked``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from halt import Policy, RateLimiter
from halt.core.algorithms.kernel import evaluate
from halt.core.policy import compile_policy
from halt.stores.cas import Versioned
from tests.stores.test_cas import AsyncTable, Table, _Rows

T0 = 1_700_000_000_000
# 'tight' has the least headroom, so its key is written first; 'wide' second.
tight = compile_policy(Policy(name="tight", limit=5, window=60, algorithm="fixed_window"))
wide = compile_policy(Policy(name="wide", limit=20, window=60, algorithm="fixed_window"))
rules = [wide, tight]


def take_before(t: _Rows, target: str, units: float) -> None:
    """Another process takes ``units`` from ``target`` just before this process's next write to it."""
    once = [True]

    def interfere(key: str) -> None:
        if not once[0] or key != target:
            return
        once[0] = False
        r = t.rows.get(key)
        state, o = evaluate(None if r is None else r.state, T0, units, tight if key.startswith("tight") else wide)
        t.rows[key] = Versioned(state, -1.0, o.expires_at_ms)

    t.interfere = interfere


def used(t: _Rows, key: str) -> float:
    r = t.rows.get(key)
    return 0 if r is None else r.state[2]


def test_writes_the_policy_closest_to_its_limit_first_a_conflict_there_starts_over_with_nothing_taken() -> None:
    t = Table()
    t.consume_set("k", rules, T0, [1, 1])
    take_before(t, "tight:fw|k", 3)
    os = t.consume_set("k", rules, T0, [1, 1])
    assert [o.remaining for o in os] == [18, 0]
    assert [used(t, "wide:fw|k"), used(t, "tight:fw|k")] == [2, 5]
    assert t.counters.conflicts == 1 and t.counters.set_leaked == {}


def test_a_conflict_after_units_were_taken_steps_the_other_policy_again_on_its_record() -> None:
    t = Table()
    take_before(t, "wide:fw|k", 7)
    os = t.consume_set("k", rules, T0, [1, 1])
    assert all(o.allowed for o in os)
    assert [used(t, "wide:fw|k"), used(t, "tight:fw|k")] == [8, 1]
    assert t.counters.conflicts == 1 and t.counters.set_leaked == {}


async def test_a_group_whose_later_policy_filled_up_meanwhile_rejects_only_the_checks_it_now_rejects() -> None:
    t = AsyncTable()
    writes = [0]

    def interfere(key: str) -> None:
        writes[0] += 1 if key == "wide:fw|k" else 0
        if key != "wide:fw|k" or writes[0] != 2:
            return
        r = t.rows.get(key)
        state, o = evaluate(None if r is None else r.state, T0, 17, wide)  # another process takes 17 of the 19 left
        t.rows[key] = Versioned(state, -1.0, o.expires_at_ms)

    t.interfere = interfere
    # The first check goes alone; the three others wait for it and go as one group, which meets the other writer.
    os = await asyncio.gather(*(t.consume_set("k", rules, T0, [1, 1]) for _ in range(4)))
    assert [all(x.allowed for x in o) for o in os] == [True, True, True, False]
    assert os[3][0].allowed is False and os[3][0].reason == "limit"
    assert used(t, "wide:fw|k") == 20 and used(t, "tight:fw|k") == 4
    assert t.counters.set_leaked == {"tight:fw": 1}


def test_if_the_other_policy_now_rejects_the_request_is_rejected_and_the_units_taken_are_counted() -> None:
    for hand_back in (False, True):
        t = Table()
        t.hand_back = hand_back
        take_before(t, "wide:fw|k", 20)  # another process fills 'wide' between this check's read and its write
        os = t.consume_set("k", rules, T0, [1, 1])
        assert os[0].allowed is False and os[0].reason == "limit"
        assert used(t, "wide:fw|k") == 20 and used(t, "tight:fw|k") == 1
        assert t.counters.set_leaked == {"tight:fw": 1}
        d = RateLimiter(policy=[wide.policy, tight.policy], store=t, clock=lambda: T0).check("k")
        assert not d.allowed and d.policy == "wide"


async def test_async_set_checks_of_one_identity_go_as_one_group() -> None:
    t = AsyncTable()
    os = await asyncio.gather(*(t.consume_set("k", rules, T0, [1, 1]) for _ in range(30)))
    assert len([o for o in os if all(x.allowed for x in o)]) == 5
    assert [used(t, "wide:fw|k"), used(t, "tight:fw|k")] == [5, 5]
    assert (t.counters.conflicts, t.counters.reads, t.counters.writes) == (0, 4, 4)


def test_threads_of_one_identity_go_as_groups_and_admit_exactly_the_tightest_limit() -> None:
    t = Table(latency=0.002)
    admitted: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        mine = [all(o.allowed for o in t.consume_set("k", rules, T0, [1, 1])) for _ in range(5)]
        with lock:
            admitted.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(admitted) == 5
    assert [used(t, "wide:fw|k"), used(t, "tight:fw|k")] == [5, 5]
    assert t.counters.conflicts == 0 and t.counters.reads < 40 * 2  # grouped: fewer reads than checks x keys
