"""Blocked-key cache: keys Redis rejected, answered in process (no round trip) while they stay rejected.

A port of packages/typescript/src/stores/redis/cache.ts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional

from halt.core.algorithms.kernel import State, run_step
from halt.core.policy import Rule
from halt.core.types import Outcome


class _Entry:
    __slots__ = ("offset", "signature", "state")

    def __init__(self, signature: str, state: State, offset: float) -> None:
        #: The policy's numbers (two Rule objects of one policy share entries).
        self.signature = signature
        #: The state Redis returned with the rejection. Never changed: each answer steps a copy.
        self.state = state
        #: Add to the caller's ``now`` to get the time frame of the state (non-zero with the server's clock).
        self.offset = offset


class BlockedKeyCache:
    """Remembers the state of keys that Redis rejected and answers later checks of those keys in process while
    the algorithm, run on that state, still rejects them.

    Why this is sound: in Redis a key's state only gets worse for the client until it is reset or expires (other
    checks consume; a cooldown writes nothing), so when the remembered state rejects a request, the state in Redis
    rejects it too. Answered locally: cooldowns, ``cost_exceeds_capacity``, and ``limit`` when the policy has no
    ``block_duration`` (with one, a ``limit`` rejection starts a cooldown, which Redis must record). The price: a
    ``reset()`` made by another process is seen here only when the entry runs out (at the latest when the
    rejection's retry time has passed); ``reset()`` and ``clear()`` on this store drop entries at once.

    Thread-safe: lookups are single dict operations; inserting (with eviction of the oldest) takes a lock.
    """

    __slots__ = ("_entries", "_lock", "max_keys")

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def answer(self, key: str, rule: Rule, signature: str, now: float, cost: float, peek: bool) -> Optional[Outcome]:
        """The outcome for ``key`` without a round trip, or None when Redis must decide."""
        e = self._entries.get(key)
        if e is None:
            return None
        if e.signature != signature:
            self._entries.pop(key, None)
            return None
        out = run_step(list(e.state), now + e.offset, cost, rule)
        if out.allowed or (out.reason == "limit" and rule.block_ms > 0):
            if not peek:
                self._entries.pop(key, None)
            return None
        return out

    def remember(self, key: str, rule: Rule, signature: str, state: State, offset: float) -> None:
        """Remember a rejected key's state (as the script returned it)."""
        if len(state) != rule.state_size:
            return
        with self._lock:
            entries = self._entries
            entries.pop(key, None)
            while len(entries) >= self.max_keys:
                entries.popitem(last=False)
            entries[key] = _Entry(signature, state, offset)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def delete_prefix(self, prefix: str) -> None:
        """Drop every entry whose key starts with ``prefix``."""
        with self._lock:
            for key in [k for k in self._entries if k.startswith(prefix)]:
                self._entries.pop(key, None)
