"""InMemoryStore: per-process state, thread-safe with striped locks, bounded, self-cleaning."""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

from halt.core.algorithms.kernel import State, expires_at, run_step
from halt.core.errors import HaltConfigError
from halt.core.policy import Rule
from halt.core.sets import evaluate_set
from halt.core.types import Outcome

_Key = Tuple[str, str]
MAX_SHARDS = 64


class _Shard:
    """One stripe of the key space: its own lock, and its keys in insertion (or last rotation) order."""

    __slots__ = ("cap", "counts", "data", "lock")

    def __init__(self, cap: int) -> None:
        self.lock = threading.Lock()
        self.data: OrderedDict[_Key, State] = OrderedDict()
        #: Keys held per namespace (size(ns) without a scan).
        self.counts: dict[str, int] = {}
        self.cap = cap

    def add(self, key: _Key, state: State) -> None:
        self.data[key] = state
        self.counts[key[0]] = self.counts.get(key[0], 0) + 1

    def remove(self, key: _Key) -> None:
        del self.data[key]
        self.counts[key[0]] -= 1


class InMemoryStore:
    """The default store: state lives in this process.

    Thread-safe without one global lock: keys are spread over up to 64 stripes by hash, each with its own
    lock, so threads checking different keys rarely wait for each other. Bounded: at most ``max_keys`` keys
    (all policies together; each stripe holds its share), and at the cap the key inserted (or last rotated)
    longest ago in that stripe is forgotten, so memory stays bounded under a flood of random keys.

    Example::

        limiter = RateLimiter(store=InMemoryStore(max_keys=100_000), policy=presets.PUBLIC_API)
    """

    synchronous = True
    shared = False

    def __init__(self, max_keys: int = 1_000_000, sweep_interval: float = 60_000) -> None:
        """``sweep_interval``: milliseconds between sweeps of expired keys by a daemon thread; 0 turns it off."""
        if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 1:
            raise HaltConfigError(
                "HALT_INVALID_MAX_KEYS",
                f"InMemoryStore: max_keys must be a whole number >= 1, got {max_keys!r}. Fix: max_keys=100000.",
            )
        if not isinstance(sweep_interval, (int, float)) or isinstance(sweep_interval, bool) or not sweep_interval >= 0:
            raise HaltConfigError(
                "HALT_INVALID_SWEEP_INTERVAL",
                f"InMemoryStore: sweep_interval must be milliseconds >= 0, got {sweep_interval!r}.",
            )
        self.max_keys = max_keys
        n = min(MAX_SHARDS, max_keys)
        # Caps add up to max_keys exactly.
        self._shards = [_Shard(max_keys // n + (1 if i < max_keys % n else 0)) for i in range(n)]
        self._n = n
        #: The rule last seen per namespace: expiry is computed with it.
        self._rules: dict[str, Rule] = {}
        self._last_now: float = 0
        self._last_rule: Optional[Rule] = None
        if sweep_interval > 0:
            _SWEEPER.add(self, sweep_interval / 1000)

    def consume(self, ns: str, id: str, rule: Rule, now: float, cost: float) -> Outcome:
        if now > self._last_now:
            self._last_now = now
        if rule is not self._last_rule:
            self._rules[ns] = rule
            self._last_rule = rule
        shard = self._shards[hash(id) % self._n]
        key = (ns, id)
        with shard.lock:
            s = shard.data.get(key)
            if s is None:
                s = rule.algorithm.init(now, rule)
                self._insert(shard, key, s, now)
            elif len(s) != rule.state_size:
                # The policy changed its state layout (e.g. another precision): start afresh.
                s = rule.algorithm.init(now, rule)
                shard.data[key] = s
            return run_step(s, now, cost, rule)

    def consume_set(self, id: str, rules: Sequence[Rule], now: float, costs: Sequence[float]) -> list[Outcome]:
        """A limit set: one check of ``id`` against several rules (each under its ``rule.ns``), decided as
        ``evaluate_set()`` says. Atomic: every key of one identity lives in one stripe, under one lock."""
        if now > self._last_now:
            self._last_now = now
        for rule in rules:
            self._rules[rule.ns] = rule
        shard = self._shards[hash(id) % self._n]
        with shard.lock:
            data = shard.data
            result = evaluate_set([data.get((r.ns, id)) for r in rules], now, costs, rules)
            for rule, state in zip(rules, result.states):
                if state is None:
                    continue
                key = (rule.ns, id)
                if key in data:
                    data[key] = state
                else:
                    self._insert(shard, key, state, now)
        return result.outcomes

    def peek(self, ns: str, id: str, rule: Rule, now: float) -> Outcome:
        shard = self._shards[hash(id) % self._n]
        with shard.lock:
            s = shard.data.get((ns, id))
            copy = list(s) if s is not None and len(s) == rule.state_size else None
        return run_step(copy if copy is not None else rule.algorithm.init(now, rule), now, 0, rule)

    def reset(self, ns: str, id: str) -> None:
        shard = self._shards[hash(id) % self._n]
        key = (ns, id)
        with shard.lock:
            if key in shard.data:
                shard.remove(key)

    def clear(self, ns: Optional[str] = None) -> None:
        for shard in self._shards:
            with shard.lock:
                if ns is None:
                    shard.data.clear()
                    shard.counts.clear()
                elif shard.counts.get(ns):
                    for key in [k for k in shard.data if k[0] == ns]:
                        shard.remove(key)

    def size(self, ns: Optional[str] = None) -> int:
        """Number of keys held (of a namespace, or in all)."""
        if ns is None:
            return sum(len(s.data) for s in self._shards)
        return sum(s.counts.get(ns, 0) for s in self._shards)

    def cleanup_expired(self, now: Optional[float] = None) -> int:
        """Delete every key whose state has expired at ``now`` (default: the latest time this store has seen).

        Returns how many were removed.
        """
        at = self._last_now if now is None else now
        removed = 0
        for shard in self._shards:
            with shard.lock:
                for key, s in list(shard.data.items()):
                    if self._expired(key, s, at):
                        shard.remove(key)
                        removed += 1
        return removed

    def close(self) -> None:
        """Stop the periodic sweep of this store. The store stays usable."""
        _SWEEPER.remove(self)

    def _expired(self, key: _Key, s: State, now: float) -> bool:
        rule = self._rules.get(key[0])
        return rule is None or len(s) != rule.state_size or expires_at(s, rule) <= now

    def _insert(self, shard: _Shard, key: _Key, s: State, now: float) -> None:
        """Give ``key`` a place. Each insertion also looks at the two oldest keys of the stripe: an expired one
        is reclaimed, a live one goes to the back. So idle keys are reclaimed as new ones arrive (O(1) per
        insertion), and the front holds the keys inserted or rotated longest ago: at the cap, those go first."""
        data = shard.data
        for _ in range(2):
            if not data:
                break
            oldest = next(iter(data))
            if self._expired(oldest, data[oldest], now):
                shard.remove(oldest)
            else:
                data.move_to_end(oldest)
        if len(data) >= shard.cap:
            oldest = next(iter(data))
            shard.remove(oldest)
        shard.add(key, s)


class _Sweeper:
    """One daemon thread sweeping every store that asked for it, each at its own interval. It holds the stores
    weakly, so an unused store is still collected (and one thread serves any number of stores)."""

    def __init__(self) -> None:
        self._due: weakref.WeakKeyDictionary[InMemoryStore, list[float]] = weakref.WeakKeyDictionary()
        self._cv = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def add(self, store: InMemoryStore, every_s: float) -> None:
        with self._cv:
            self._due[store] = [every_s, time.monotonic() + every_s]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="halt-memory-sweep", daemon=True)
                self._thread.start()
            self._cv.notify()

    def remove(self, store: InMemoryStore) -> None:
        with self._cv:
            self._due.pop(store, None)

    def sweep_due(self, now: float) -> Optional[float]:
        """Sweep the stores whose time has come (monotonic seconds ``now``); return when the next one is due."""
        with self._cv:
            due = [store for store, (_, at) in list(self._due.items()) if at <= now]
            for store in due:
                self._due[store][1] = now + self._due[store][0]
        for store in due:
            store.cleanup_expired()
        with self._cv:
            return min((at for _, at in self._due.values()), default=None)

    def _run(self) -> None:
        while True:
            nxt = self.sweep_due(time.monotonic())
            with self._cv:
                self._cv.wait(None if nxt is None else max(0.0, nxt - time.monotonic()))


_SWEEPER = _Sweeper()
