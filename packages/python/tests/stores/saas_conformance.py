"""The quota and penalty part of the store-conformance suite (a port of packages/typescript/test/stores/
saas-conformance.ts): every spec/saas vector through the store, and 4 processes (or groups here) x 100 concurrent
calls on one quota key with limit 150 (exactly 150 taken) and on one penalty key (a score of exactly 400).

Star-imported by tests/stores/conformance.py, so every store that runs the suite runs this too."""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import pytest

from halt.core.algorithms import evaluate
from halt.core.policy import Rule
from tests.saas.support import concurrency_rule, kernel_cases, kernel_id, kernel_rule
from tests.stores.conformance import T0, StoreHarness, Worker, call, fields, maybe
from tests.support import outcome_fields

KERNEL_CASES = kernel_cases()
DAY = 86_400_000
#: A day holding T0, the quota period of the concurrency test.
START = T0 - T0 % DAY


@pytest.mark.parametrize("pair", KERNEL_CASES, ids=[kernel_id(p) for p in KERNEL_CASES])
async def test_conformance_saas_vector(pair: tuple[str, dict[str, Any]], harness: StoreHarness, store: Any) -> None:
    """Every spec/saas vector: each outcome as the vector's and the pure function's, the stored state the model's."""
    kernel, case = pair
    name = f"saas-{uuid.uuid4().hex[:8]}"
    model: Optional[list[float]] = None
    for i, step in enumerate(case["steps"]):
        rule = kernel_rule(kernel, case, step, name)
        peek = bool(step.get("peek"))
        cost = 0 if peek else step.get("cost", 1)
        o = await call(store, rule, "k", step["t"], cost, peek)
        assert outcome_fields(o) == {k: v for k, v in step["expect"].items() if k != "state"}, f"step {i}"
        m_state, m_out = evaluate(model, step["t"], cost, rule)
        assert fields(o) == fields(m_out), f"step {i}: outcome as the pure function's"
        if not peek:
            model = m_state
        held = await maybe(harness.inspect(store, rule.ns, "k"))
        if model is None:
            assert held is None, f"step {i}: a peek of a missing key stores nothing"
        elif held is not None and held.state is not None:
            assert held.state == model, f"step {i}: stored state"
        if not peek and held is not None and held.ttl_ms is not None:
            ttl = max(1, math.ceil(o.expires_at_ms - step["t"])) + harness.grace_ms
            assert ttl - 5000 < held.ttl_ms <= ttl, f"step {i}: ttl"


async def test_conformance_concurrent_quota_and_violations_lose_nothing(
    harness: StoreHarness, store: Any, workers: list[Worker]
) -> None:
    """4 OS processes (or 4 groups here) x 100 concurrent consumes of one quota key with limit 150: exactly 150
    taken; then as many violations on one penalty key: a score of exactly 400 (no lost update)."""
    name = f"saas-conc-{uuid.uuid4().hex[:8]}"
    quota = concurrency_rule("quota", name, START)
    penalty = concurrency_rule("penalty", name, START)
    if workers:
        admitted = _in_workers(workers, {"kernel": "quota", "name": name, "start": START, "now": T0, "n": 100})
        _in_workers(workers, {"kernel": "penalty", "name": name, "start": START, "now": T0, "n": 100})
        print(f"{harness.name}: quota {admitted} of 400 taken with limit 150")
    else:
        admitted = sum(await _groups_here(store, quota))
        await _groups_here(store, penalty)
    score = (await call(store, penalty, "hot", T0, 0, True)).delay_ms
    if harness.atomic:
        assert admitted == 150
        assert (await call(store, quota, "hot", T0, 0, True)).remaining == 0
        assert score == 400
    else:
        assert admitted >= 150 and score <= 400


def _in_workers(workers: list[Worker], job: dict[str, Any]) -> int:
    """Run ``job`` in every worker at one instant; the units admitted in all."""
    job = {**job, "at": time.time() + 0.5}
    results: list[dict[str, Any]] = [{}] * len(workers)

    def one(i: int) -> None:
        results[i] = workers[i].run(job)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert r["errors"] == 0, r.get("first_error")
    return sum(r["admitted"] for r in results)


async def _groups_here(store: Any, rule: Rule) -> list[int]:
    """4 groups of 100 concurrent steps in this process: asyncio tasks, or threads for a synchronous store."""
    if not store.synchronous:
        groups = [asyncio.gather(*(store.consume(rule.ns, "hot", rule, T0, 1) for _ in range(100))) for _ in range(4)]
        return [sum(o.allowed for o in os) for os in await asyncio.gather(*groups)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [[pool.submit(store.consume, rule.ns, "hot", rule, T0, 1) for _ in range(100)] for _ in range(4)]
        return [sum(f.result().allowed for f in group) for group in futures]


__all__ = ["test_conformance_concurrent_quota_and_violations_lose_nothing", "test_conformance_saas_vector"]
