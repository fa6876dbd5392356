"""Worker process of the conformance suite's concurrency test: builds a store with ``module:function(*args)`` (which
returns ``(store, close)``), then on each JSON job line fires ``n`` concurrent checks of one key at the instant ``at``
(asyncio tasks, or threads for a synchronous store) and prints the result as a JSON line. A job whose ``policy`` is a
list checks that limit set (``consume_set``, cost 1 each) and also reports ``leaked``: units a compare-and-set store
took for requests it then rejected, per namespace."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import threading
import time
from typing import Any

from halt.core.algorithms import ALGORITHMS
from halt.core.policy import Policy, compile_policy
from tests.saas.support import concurrency_rule


async def main() -> None:
    module, _, function = sys.argv[1].partition(":")
    opened = getattr(importlib.import_module(module), function)(*sys.argv[2:])
    if inspect.isawaitable(opened):
        opened = await opened
    store, close = opened
    sync = store.synchronous
    # Connect (and create tables, load scripts) before the barrier, so that the run measures checks only.
    for name in ALGORITHMS:
        rule = compile_policy(Policy(name=f"warm-{id(store)}", limit=1, window=1, algorithm=name))
        r = store.peek(rule.ns, "warm", rule, time.time() * 1000)
        if not sync:
            await r
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        # A quota or penalty job of tests/stores/saas_conformance.py, a policy's, or a limit set's (a list).
        rule: Any
        if "kernel" in job:
            rule = concurrency_rule(job["kernel"], job["name"], job["start"])
        else:
            p = job["policy"]
            rule = [compile_policy(Policy(**x)) for x in p] if isinstance(p, list) else compile_policy(Policy(**p))
        before = getattr(getattr(store, "counters", None), "conflicts", None)
        leaked = dict(getattr(getattr(store, "counters", None), "set_leaked", {}))
        if sync:
            result = run_threads(store, rule, job)
        else:
            result = await run_tasks(store, rule, job)
        if before is not None:
            result["conflicts"] = store.counters.conflicts - before
        now_leaked = getattr(getattr(store, "counters", None), "set_leaked", {})
        result["leaked"] = {ns: v - leaked.get(ns, 0) for ns, v in now_leaked.items()}
        print(json.dumps(result), flush=True)
    done = close()
    if inspect.isawaitable(done):
        await done


def run_threads(store: Any, rule: Any, job: dict[str, Any]) -> dict[str, Any]:
    n = job["n"]
    outcomes: list[Any] = [None] * n
    errors: list[BaseException] = []
    start = threading.Barrier(n + 1)

    def one(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = check(store, rule, job["now"])
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, job["at"] - time.time()))
    t0 = time.time()
    start.wait()
    for t in threads:
        t.join()
    return result(outcomes, errors, t0, time.time())


async def run_tasks(store: Any, rule: Any, job: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(max(0.0, job["at"] - time.time()))
    t0 = time.time()
    got = await asyncio.gather(*(check(store, rule, job["now"]) for _ in range(job["n"])), return_exceptions=True)
    errors = [g for g in got if isinstance(g, BaseException)]
    return result([g for g in got if not isinstance(g, BaseException)], errors, t0, time.time())


def check(store: Any, rule: Any, now: float) -> Any:
    """One check of the key ``hot``: of a rule, or of a limit set (a list of rules, cost 1 each)."""
    if isinstance(rule, list):
        return store.consume_set("hot", rule, now, [1] * len(rule))
    return store.consume(rule.ns, "hot", rule, now, 1)


def admits(o: Any) -> bool:
    return all(x.allowed for x in o) if isinstance(o, list) else bool(o.allowed)


def result(outcomes: list[Any], errors: list[BaseException], t0: float, t1: float) -> dict[str, Any]:
    return {
        "admitted": sum(1 for o in outcomes if o is not None and admits(o)),
        "errors": len(errors),
        "first_error": repr(errors[0]) if errors else None,
        "t0": t0,
        "t1": t1,
    }


if __name__ == "__main__":
    asyncio.run(main())
