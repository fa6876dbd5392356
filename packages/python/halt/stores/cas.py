"""The compare-and-set loop: one key's atomic update for every store that cannot run the algorithm inside the server
(PostgreSQL, MongoDB, DynamoDB, Memcached), sync and asyncio. Stores only move state; the deciding is ``evaluate()``,
here, once (a port of packages/typescript/src/stores/cas.ts)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import math
import random
import threading
import time
import weakref
from collections import OrderedDict
from enum import Enum
from typing import Any, Callable, Dict, Generator, Generic, List, Optional, Sequence, Tuple, TypeVar, Union, cast

from typing_extensions import Literal

from halt.core.algorithms.kernel import evaluate, fits
from halt.core.errors import HaltConfigError
from halt.core.policy import Rule
from halt.core.sets import SetResult, evaluate_set
from halt.core.types import Outcome
from halt.stores.redis.keys import escape_key_part, storage_key

V = TypeVar("V")

#: Longest key the SQL, MongoDB and DynamoDB stores keep as it is (DynamoDB's partition keys stop at 2048 bytes,
#: PostgreSQL's index entries near 2700).
MAX_KEY_BYTES = 1024
#: Most checks of one key that go in one compare-and-set.
MAX_GROUP = 256
#: Most records a speculative store remembers (the last one it wrote per key), to write without reading first.
GUESSES = 10_000


class Versioned(Generic[V]):
    """One key's record as a server holds it: the spec's state list, a version the server compares, and when the
    state is back to fresh (the outcome's ``expires_at_ms``, in the limiter's timeline)."""

    __slots__ = ("expires_at", "state", "version")

    def __init__(self, state: List[float], version: V, expires_at: float) -> None:
        self.state = state
        self.version = version
        self.expires_at = expires_at

    def __repr__(self) -> str:
        return f"Versioned(state={self.state!r}, version={self.version!r}, expires_at={self.expires_at!r})"


class Next:
    """What a write stores: the state, its expiry (``expires_at``, ms in the limiter's timeline: what an exact expiry
    check compares with ``now``), the ``now`` of the check that computed it, and ``ttl_ms``, milliseconds from now
    until the server may drop the key (``max(1, ceil(expires_at - now)) + expiry_grace_ms``)."""

    __slots__ = ("expires_at", "now", "state", "ttl_ms")

    def __init__(self, state: List[float], expires_at: float, now: float, ttl_ms: int) -> None:
        self.state = state
        self.expires_at = expires_at
        self.now = now
        self.ttl_ms = ttl_ms


class _Unknown(Enum):
    UNKNOWN = 0


#: A lost write whose server did not tell the current record: the loop reads it.
UNKNOWN = _Unknown.UNKNOWN


class Written(Generic[V]):
    """What a conditional write reports: ``Written.won(version)`` (the version it produced, when the server tells),
    or ``Written.lost(current)`` when another writer came first, with the record as it now stands when the server
    tells it (``None``: there is none; ``UNKNOWN``, the default: the loop reads it)."""

    __slots__ = ("current", "ok", "version")

    def __init__(
        self, ok: bool, version: Optional[V], current: Union[Versioned[V], Literal[_Unknown.UNKNOWN], None]
    ) -> None:
        self.ok = ok
        self.version = version
        self.current = current

    @staticmethod
    def won(version: Optional[V] = None) -> Written[V]:
        return Written(True, version, UNKNOWN)

    @staticmethod
    def lost(current: Union[Versioned[V], Literal[_Unknown.UNKNOWN], None] = UNKNOWN) -> Written[V]:
        return Written(False, None, current)


class CasCounters:
    """Counters for tests, benchmarks and dashboards (plain integers: under threads an increment may rarely be lost)."""

    __slots__ = ("checks", "conflicts", "locked", "reads", "set_leaked", "writes")

    def __init__(self) -> None:
        #: Checks and peeks answered.
        self.checks = 0
        #: Reads sent to the server.
        self.reads = 0
        #: Conditional writes sent to the server.
        self.writes = 0
        #: Writes refused because another writer came first.
        self.conflicts = 0
        #: Checks that went on under a lock after repeated conflicts (stores that have one: PostgreSQL).
        self.locked = 0
        #: Limit sets: units taken, per namespace, for requests the set then rejected, because another writer changed
        #: a later policy's key between this check's reads and its writes (docs/sets.md). Rare; never an over-admission.
        self.set_leaked: Dict[str, float] = {}

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("checks", "reads", "writes", "conflicts", "locked")}

    def __repr__(self) -> str:
        return f"CasCounters({self.as_dict()}, set_leaked={self.set_leaked})"


class CasConflictError(Exception):
    """A check gave up after ``max_attempts`` conflicting writes: the limiter's failure policy answers it."""

    def __init__(self, key: str, attempts: int) -> None:
        import json

        super().__init__(
            f"halt: {attempts} conditional writes of {json.dumps(key[:200], ensure_ascii=False)} in a row lost to "
            "other writers; giving up on this check"
        )
        self.key = key
        self.attempts = attempts


def utf8(s: str) -> bytes:
    """``s`` in UTF-8 as JavaScript encodes it: a surrogate pair is one character, a lone surrogate U+FFFD."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")


def key_digest(key: str) -> str:
    """SHA-256 of ``key``'s UTF-8 bytes, base64url without padding (43 characters): how every SDK shortens a key."""
    return base64.urlsafe_b64encode(hashlib.sha256(utf8(key)).digest()).rstrip(b"=").decode("ascii")


def has_space_or_control(s: str) -> bool:
    """Whether ``s`` holds a space, a control character (below 0x20) or DEL: what Memcached's text protocol cannot
    carry in a key."""
    return any(c <= " " or c == "\x7f" for c in s)


def check_prefix(prefix: object, store_name: str, memcached: bool = False) -> str:
    """A store's key prefix, checked: at most 100 bytes (so that a hashed key stays short), no ``{`` or ``}`` (they
    would break the identity's braces), and for Memcached no space or control characters."""
    if (
        not isinstance(prefix, str)
        or "{" in prefix
        or "}" in prefix
        or (memcached and has_space_or_control(prefix))
        or len(utf8(prefix)) > 100
    ):
        extra = ", spaces or control characters" if memcached else ""
        raise HaltConfigError(
            "HALT_INVALID_STORE_PREFIX",
            f"{store_name}: prefix must be a string of at most 100 bytes without '{{' or '}}'{extra}, "
            f"got {prefix!r}. Fix: prefix='halt:'.",
        )
    return prefix


def bounded_key(prefix: str, ns: str, id: str) -> str:
    """The key of ``id`` under ``ns`` (spec/KEYS.md), or, beyond ``MAX_KEY_BYTES`` of UTF-8,
    ``<prefix><ns>:{%#<digest of the key>}``: still under the namespace (so ``clear(ns)`` finds it), and never the key
    of another identity (an escaped identity holds ``%`` only as ``%25``, ``%7B`` or ``%7D``)."""
    key = storage_key(prefix, ns, id)
    if len(key) * 4 <= MAX_KEY_BYTES or len(utf8(key)) <= MAX_KEY_BYTES:
        return key
    return f"{prefix}{escape_key_part(ns)}:{{%#{key_digest(key)}}}"


def new_version() -> int:
    """A version for a write: random, 53 bits. Not a counter: a counter restarts when a key is deleted (reset, expiry)
    and re-created, and a writer still holding the old record could then win a compare with a version that only looks
    the same (ABA). A random version repeats with odds of 2^-53 per pair of writes of one key."""
    return random.getrandbits(53)


class _Check:
    """One check waiting for its key (sync form: with the event its thread waits on). A limit-set check
    (``_SetCheck``) waits for its keys the same way; its outcome is then a list, one per policy."""

    __slots__ = ("cost", "error", "event", "future", "group", "now", "outcome", "rule")

    def __init__(self, rule: Rule, now: float, cost: float) -> None:
        self.rule = rule
        self.now = now
        self.cost = cost
        self.outcome: Any = None
        self.error: Optional[BaseException] = None
        self.event: Optional[threading.Event] = None
        #: Set on a waiting thread's check when it is to run the next group itself.
        self.group: Optional[List[_Check]] = None
        self.future: Optional[asyncio.Future[Any]] = None


class _SetCheck(_Check):
    """One limit-set check: ``rules[i]`` with ``costs[i]``; ``rule`` is the first."""

    __slots__ = ("costs", "rules")

    def __init__(self, rules: Sequence[Rule], now: float, costs: Sequence[float]) -> None:
        super().__init__(rules[0], now, costs[0])
        self.rules = rules
        self.costs = costs


# The I/O a step of the loop asks for (see _CasCore._update): the sync and async drivers perform it. _READ_ALL reads
# several keys (a limit set's), at once where the driver can (asyncio).
_READ, _WRITE, _SLEEP, _LOCK, _READ_ALL = range(5)
_Op = Tuple[Any, ...]
_Steps = Generator[_Op, Any, List[Any]]
#: The loop of one group of checks of one key (or of one set's keys), as I/O requests: outcomes per check.
_Run = Callable[[List[Any]], _Steps]
Apply = Callable[[Optional[Versioned[Any]]], Optional[Next]]


class _CasCore(Generic[V]):
    """Everything the sync and async forms share: options, counters, the guesses, and the loop itself as a generator
    of I/O requests (read, write, sleep, lock) that each form's driver performs."""

    shared = True
    #: When the first write of a check is computed from the record this process wrote last, without a read:
    #: ``"always"`` when a conflicting write tells the current record (a wrong guess costs one write more, no read);
    #: ``"adaptive"`` when it does not (a wrong guess costs a failed write, a read and a write), so only while more
    #: than half the guesses would hit; ``"never"``: always read first (a server that tells no version after a write).
    speculation: str = "never"
    #: Conflicts after which a check goes on under ``_exclusive()`` (stores that have it set this; inf: never).
    exclusive_after: float = math.inf
    #: Whether a write with ``prev`` None also replaces a record that has expired (the condition "no record, or one
    #: whose ``e <= now``": PostgreSQL, MongoDB, DynamoDB). Then a guess that has expired by the check's time goes as
    #: such an insert: expiry may have deleted the record since (a TTL, ``cleanup_expired()``), and the insert
    #: succeeds either way, where a write conditional on its version would find nothing (Memcached does not guess).
    insert_replaces_expired: bool = True

    def __init__(self, store_name: str, max_attempts: int = 100, expiry_grace_ms: int = 0) -> None:
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            raise HaltConfigError(
                "HALT_INVALID_CAS_ATTEMPTS",
                f"{store_name}: max_attempts must be a whole number >= 1, got {max_attempts!r}. Fix: omit it (100).",
            )
        if not isinstance(expiry_grace_ms, int) or isinstance(expiry_grace_ms, bool) or expiry_grace_ms < 0:
            raise HaltConfigError(
                "HALT_INVALID_EXPIRY_GRACE",
                f"{store_name}: expiry_grace_ms must be a whole number of milliseconds >= 0, got {expiry_grace_ms!r}. "
                "Fix: omit it (0) or e.g. 1000.",
            )
        self.max_attempts = max_attempts
        self.expiry_grace_ms = expiry_grace_ms
        self.counters = CasCounters()
        #: The latest ``now`` this store has seen: ``cleanup_expired()`` uses it by default.
        self.last_now: float = 0
        self._guesses: OrderedDict[str, Versioned[V]] = OrderedDict()
        self._hit_rate = 1.0

    @property
    def guess_hit_rate(self) -> float:
        """How often the record this process wrote last was still current, lately (0..1; stores that speculate)."""
        return self._hit_rate

    def key(self, ns: str, id: str) -> str:
        """The server's key of ``id`` under namespace ``ns`` (spec/KEYS.md)."""
        raise NotImplementedError

    def _saw(self, now: float) -> None:
        if now > self.last_now:
            self.last_now = now

    def _apply(
        self, prev: Optional[Versioned[V]], group: List[_Check], fresh: bool
    ) -> Tuple[List[Outcome], Optional[Next]]:
        """The group's steps, in order, from ``prev``; and what to store (None: nothing changed, when ``prev`` was read,
        not guessed)."""
        state: Optional[List[float]] = None if prev is None else prev.state
        expires = 0.0
        first = math.inf
        last = -math.inf
        outcomes: List[Outcome] = []
        for c in group:
            state, o = evaluate(state, c.now, c.cost, c.rule)
            outcomes.append(o)
            if o.expires_at_ms > expires:
                expires = o.expires_at_ms
            if c.now < first:
                first = c.now
            if c.now > last:
                last = c.now
        assert state is not None
        # Unchanged (cooldowns, rejections that move nothing): the stored expiry, derived from the same state, still
        # holds. A guess (``fresh`` False) is written all the same: the conditional write is what confirms it.
        if fresh and prev is not None and fits(prev.state, group[-1].rule) and prev.state == state:
            return outcomes, None
        ttl = max(1, math.ceil(expires - last)) + self.expiry_grace_ms
        # ``now`` (what an insert compares an existing record's expiry with) is the group's earliest: expired by then,
        # the record is equivalent to none for the first step, and the others follow from it.
        return outcomes, Next(state, expires, first, ttl)

    def _update(self, key: str, ns: str, group: List[_Check]) -> _Steps:
        """One group's compare-and-set, as the I/O it needs (yielded) and the outcomes (returned)."""
        speculating = self.speculation != "never"
        guess = self._guesses.get(key) if speculating else None
        # Guessing: the first write goes from the record this process wrote last (None: none), unread.
        guessing = self.speculation == "always" or (self.speculation == "adaptive" and self._hit_rate > 0.5)
        # ``known``: the record as last seen (read, or handed over by a failed write); UNKNOWN: read it.
        known: Union[Versioned[V], Literal[_Unknown.UNKNOWN], None] = guess if guessing else UNKNOWN
        # A guess that has expired by the group's earliest ``now`` (``nxt.now``, what an insert compares the expiry
        # with): the record may be gone since, so it is written as a new one, on the insert's condition ("none, or
        # expired"), which holds whether it is still there or not; the state is still computed from it (exactly the
        # spec's).
        as_new = guessing and guess is not None and self.insert_replaces_expired
        fresh = False
        for attempt in range(self.max_attempts):
            if attempt >= self.exclusive_after:
                return (yield from self._locked(key, ns, group))
            if attempt >= 2:
                yield (_SLEEP, random.random() * min(32, 2 ** (attempt - 1)) / 1000)
            if known is UNKNOWN:
                self.counters.reads += 1
                read: Optional[Versioned[V]] = yield (_READ, key, ns)
                known = read
                fresh = True
                # Not guessing this time: the read tells whether the guess would have hit.
                if attempt == 0 and speculating:
                    self._score(read is None if guess is None else read is not None and read.version == guess.version)
            outcomes, nxt = self._apply(known, group, fresh)
            if nxt is None:
                self.counters.checks += len(group)
                return outcomes
            self.counters.writes += 1
            insert = as_new and guess is not None and guess.expires_at <= nxt.now
            written: Written[V] = yield (_WRITE, key, ns, nxt, None if insert else known)
            if written.ok:
                self.counters.checks += len(group)
                if guessing and attempt == 0:
                    self._score(True)
                if speculating:
                    self._remember(key, nxt, written.version)
                return outcomes
            self.counters.conflicts += 1
            if guessing and attempt == 0:
                self._score(False)
            guessing = False
            as_new = False
            self._guesses.pop(key, None)
            known = written.current
            fresh = True
        raise CasConflictError(key, self.max_attempts)

    def _update_set(self, keys: List[str], group: List[_SetCheck]) -> _Steps:
        """A group of limit-set checks of one identity: read every policy's key, decide with ``evaluate_set()``, then
        write each changed key with its own conditional write, the policies with the least headroom first. A conflict
        before any units are taken starts over from fresh reads, so the decision is as atomic as a single key's; one
        after some were taken goes on key by key (``_finish_set``). Returns each check's outcomes."""
        n = len(keys)
        rules = group[0].rules
        for attempt in range(self.max_attempts):
            if attempt >= 2:
                yield (_SLEEP, random.random() * min(32, 2 ** (attempt - 1)) / 1000)
            self.counters.reads += n
            records: List[Optional[Versioned[V]]] = yield (_READ_ALL, [(k, r.ns) for k, r in zip(keys, rules)])
            # The group's checks in order, each on the states the ones before it left.
            states: List[Optional[List[float]]] = [None if rec is None else rec.state for rec in records]
            results: List[SetResult] = []
            for c in group:
                res = evaluate_set(states, c.now, c.costs, c.rules)
                states = [s if t is None else t for s, t in zip(states, res.states)]
                results.append(res)
            takes = [any(res.outcomes[i].allowed and res.states[i] is not None for res in results) for i in range(n)]
            writes = []
            for i in range(n):
                nxt, prev = states[i], records[i]
                if nxt is None or (prev is not None and nxt is prev.state):
                    continue
                if prev is not None and fits(prev.state, rules[i]) and prev.state == nxt:
                    continue
                writes.append(i)
            # Units are taken first from the policy closest to its limit: the one most likely to reject on a retry.
            last = results[-1]
            writes.sort(key=lambda i: last.outcomes[i].remaining / rules[i].capacity if takes[i] else 2)
            taken: List[int] = []
            retry = False
            for w, i in enumerate(writes):
                self.counters.writes += 1
                nxt_i = cast(List[float], states[i])
                written: Written[V] = yield (
                    _WRITE,
                    keys[i],
                    rules[i].ns,
                    self._set_next(group, results, i, nxt_i),
                    records[i],
                )
                if written.ok:
                    if takes[i]:
                        taken.append(i)
                    continue
                self.counters.conflicts += 1
                if not taken:
                    retry = True
                    break
                yield from self._finish_set(keys, group, results, writes[w:], written.current, taken)
                break
            if retry:
                continue
            self.counters.checks += len(group)
            return [res.outcomes for res in results]
        raise CasConflictError(keys[0], self.max_attempts)

    def _finish_set(
        self,
        keys: List[str],
        group: List[_SetCheck],
        results: List[SetResult],
        rest: List[int],
        handed: Union[Versioned[V], Literal[_Unknown.UNKNOWN], None],
        taken: List[int],
    ) -> Generator[_Op, Any, None]:
        """After a conflict once units were taken: write the remaining policies one by one, the group's checks
        stepped again on each one's current record. A check that took units before keeps taking them if the policy
        still admits it; if an enforced policy now rejects it, the check is rejected and takes nothing from the
        policies after (the units already taken stay taken: ``counters.set_leaked``). Other checks take nothing here
        (a cooldown such a race would start is not written)."""
        known = handed
        for i in rest:
            ns = group[0].rules[i].ns
            attempt = 0
            while True:
                if attempt >= self.max_attempts:
                    raise CasConflictError(keys[i], self.max_attempts)
                if attempt >= 2:
                    yield (_SLEEP, random.random() * min(32, 2 ** (attempt - 1)) / 1000)
                attempt += 1
                if known is UNKNOWN:
                    self.counters.reads += 1
                    known = yield (_READ, keys[i], ns)
                state: Optional[List[float]] = None if known is None else known.state
                outs: Dict[int, Outcome] = {}
                flipped: List[int] = []
                changed = False
                for j, c in enumerate(group):
                    res = results[j]
                    rule = c.rules[i]
                    planned = res.outcomes[i]
                    if not res.allowed or not planned.allowed or res.states[i] is None:
                        if planned.allowed:
                            outs[j] = evaluate(state, c.now, 0, rule)[1]
                        continue
                    stepped, o = evaluate(state, c.now, c.costs[i], rule)
                    outs[j] = o
                    if not o.allowed:
                        if not rule.shadow:
                            flipped.append(j)
                        continue
                    state = stepped
                    changed = True
                if changed:
                    self.counters.writes += 1
                    nxt = self._set_next(group, results, i, cast(List[float], state), outs)
                    written: Written[V] = yield (_WRITE, keys[i], ns, nxt, known)
                    if not written.ok:
                        self.counters.conflicts += 1
                        known = written.current
                        continue
                for j, o in outs.items():
                    results[j].outcomes[i] = o
                for j in flipped:
                    res = results[j]
                    res.allowed = False
                    res.states[i] = None
                    for t in taken:
                        if res.states[t] is None:
                            continue
                        leaked_ns = group[j].rules[t].ns
                        self.counters.set_leaked[leaked_ns] = (
                            self.counters.set_leaked.get(leaked_ns, 0) + group[j].costs[t]
                        )
                if changed:
                    taken.append(i)
                known = UNKNOWN
                break

    def _set_next(
        self,
        group: List[_SetCheck],
        results: List[SetResult],
        i: int,
        state: List[float],
        outs: Optional[Dict[int, Outcome]] = None,
    ) -> Next:
        """What a group's write of policy ``i`` stores: the final state, the latest expiry of the checks that
        stepped it."""
        expires = 0.0
        first = math.inf
        last = -math.inf
        for j, c in enumerate(group):
            o = outs.get(j) if outs is not None else None
            if o is None:
                o = results[j].outcomes[i]
            if o.expires_at_ms > expires:
                expires = o.expires_at_ms
            if c.now < first:
                first = c.now
            if c.now > last:
                last = c.now
        return Next(state, expires, first, max(1, math.ceil(expires - last)) + self.expiry_grace_ms)

    def _locked(self, key: str, ns: str, group: List[_Check]) -> _Steps:
        """The group under the store's lock: it cannot conflict."""
        self.counters.locked += 1
        result: List[List[Outcome]] = []

        def apply(current: Optional[Versioned[V]]) -> Optional[Next]:
            outcomes, nxt = self._apply(current, group, True)
            result[:] = [outcomes]
            return nxt

        yield (_LOCK, key, ns, apply)
        self.counters.checks += len(group)
        return result[0]

    def _peeked(self, record: Optional[Versioned[V]], rule: Rule, now: float) -> Outcome:
        self.counters.checks += 1
        return evaluate(None if record is None else record.state, now, 0, rule)[1]

    def _score(self, hit: bool) -> None:
        self._hit_rate += ((1.0 if hit else 0.0) - self._hit_rate) / 50

    def _remember(self, key: str, nxt: Next, version: Optional[V]) -> None:
        """Remember what this process wrote, for its next speculative write (bounded; oldest first out)."""
        if version is None:
            return
        guesses = self._guesses
        # Pop first: refreshing a key already held must not evict another key.
        guesses.pop(key, None)
        if len(guesses) >= GUESSES:
            with contextlib.suppress(KeyError):  # emptied by another thread meanwhile
                guesses.popitem(last=False)
        guesses[key] = Versioned(nxt.state, version, nxt.expires_at)


class CasStore(_CasCore[V]):
    """A synchronous store made of a compare-and-set primitive. Subclasses move state; this class runs the algorithm
    (``evaluate()``, the spec's pure function) between the read and the write, and retries when another writer came
    first, so every check is atomic:

    1. read the record (state, version); none: a fresh key;
    2. run the algorithm on it at ``now`` (for every check of the key waiting in this process, in order);
    3. unchanged state (a cooldown, a rejection that moves nothing): done, nothing written; else write it on the
       condition that the version is still the one read (none: that the key is still absent, or expired), with a new
       random version;
    4. on conflict go back to 1 (after two conflicts, with a random wait of up to 2^n ms, at most 32 ms).

    Threads of one process never race each other on a key: while one thread's check is in flight the others wait,
    then go as one group (one read, one write), run by the first of them. Speculation (``speculation``) skips step 1
    when the record this process wrote last is likely current.

    A subclass implements five methods (and sets ``speculation`` / ``exclusive_after`` when its server allows):

    - ``key(ns, id) -> str``: the server's key (use ``bounded_key()``);
    - ``_read(key, ns) -> Versioned | None``;
    - ``_write(key, ns, next, prev) -> Written``: store ``next`` if the key still holds ``prev`` (same version), or,
      with ``prev`` None, if it holds nothing or a record expired by ``next.now``;
    - ``_remove(key, ns)``: delete one key;
    - ``_remove_all(ns)``: delete every key of ``ns``, or of this store when ``ns`` is None;
    - optional ``_exclusive(key, ns, apply)``: with the key locked against other writers, call ``apply(current)`` and
      store what it returns (None: nothing); used after ``exclusive_after`` conflicts.
    """

    synchronous = True

    def __init__(self, store_name: str, max_attempts: int = 100, expiry_grace_ms: int = 0) -> None:
        super().__init__(store_name, max_attempts, expiry_grace_ms)
        self._mutex = threading.Lock()
        #: Per key with a check in flight: the checks waiting for it.
        self._queues: dict[str, List[_Check]] = {}
        #: Per limit set (its keys joined) with a check in flight: the set checks waiting for it.
        self._set_queues: dict[str, List[_Check]] = {}

    def _read(self, key: str, ns: str) -> Optional[Versioned[V]]:
        raise NotImplementedError

    def _write(self, key: str, ns: str, next: Next, prev: Optional[Versioned[V]]) -> Written[V]:
        raise NotImplementedError

    def _remove(self, key: str, ns: str) -> None:
        raise NotImplementedError

    def _remove_all(self, ns: Optional[str]) -> None:
        raise NotImplementedError

    def _exclusive(self, key: str, ns: str, apply: Apply) -> None:
        """Only called when a subclass sets ``exclusive_after``: it then overrides this."""
        raise NotImplementedError

    def consume(self, ns: str, id: str, rule: Rule, now: float, cost: float) -> Outcome:
        self._saw(now)
        key = self.key(ns, id)
        return cast(Outcome, self._join(self._queues, key, _Check(rule, now, cost), lambda g: self._update(key, ns, g)))

    def consume_set(self, id: str, rules: Sequence[Rule], now: float, costs: Sequence[float]) -> List[Outcome]:
        """A limit set: one conditional write per policy key, tightest first (``_update_set``; docs/sets.md). Set
        checks of one identity in this process go as one group, like single keys."""
        self._saw(now)
        keys = [self.key(r.ns, id) for r in rules]
        check = _SetCheck(rules, now, costs)
        steps: _Run = lambda g: self._update_set(keys, g)  # noqa: E731
        return cast(List[Outcome], self._join(self._set_queues, "\n".join(keys), check, steps))

    def _join(self, queues: dict[str, List[_Check]], key: str, check: _Check, run: _Run) -> Any:
        """Run ``check`` at once if nothing is in flight for ``key``; else wait, and be answered in a group."""
        with self._mutex:
            queue = queues.get(key)
            if queue is None:
                queues[key] = []
                group: Optional[List[_Check]] = [check]
            else:
                check.event = threading.Event()
                queue.append(check)
                group = None
        if group is None:
            assert check.event is not None
            check.event.wait()
            group = check.group
            if group is None:  # answered as part of another thread's group
                if check.error is not None:
                    raise check.error
                assert check.outcome is not None
                return check.outcome
        self._lead(queues, key, group, run)
        if check.error is not None:
            raise check.error
        assert check.outcome is not None
        return check.outcome

    def _lead(self, queues: dict[str, List[_Check]], key: str, group: List[_Check], run: _Run) -> None:
        """Run a group, answer its waiting threads, and hand the key's next group (if any) to its first thread.
        A group that fails answers the checks queued behind it with its error too: they came while the server was
        failing, and a thread cannot be abandoned from outside, so a second attempt would make them wait for two
        store timeouts instead of one (the limiter's failure policy answers them at once)."""
        failed: Optional[BaseException] = None
        try:
            outcomes = self._drive(run(group))
            for c, o in zip(group, outcomes):
                c.outcome = o
        except Exception as error:
            failed = error
            for c in group:
                c.error = error
        finally:
            with self._mutex:
                queue = queues[key]
                if queue and failed is None:
                    nxt: Optional[List[_Check]] = queue[:MAX_GROUP]
                    del queue[:MAX_GROUP]
                else:
                    nxt = None
                    del queues[key]
            if failed is not None:
                for c in queue:
                    c.error = failed
                group = group + queue
            # group[0] is this thread's check; the others' threads wait for their answer.
            for c in group[1:]:
                assert c.event is not None
                c.event.set()
            if nxt is not None:
                nxt[0].group = nxt
                assert nxt[0].event is not None
                nxt[0].event.set()

    def _drive(self, steps: _Steps) -> List[Any]:
        """Perform the loop's I/O requests with this store's blocking calls."""
        try:
            op = next(steps)
            while True:
                kind = op[0]
                if kind == _READ:
                    result: Any = self._read(op[1], op[2])
                elif kind == _WRITE:
                    result = self._write(op[1], op[2], op[3], op[4])
                elif kind == _READ_ALL:
                    result = [self._read(k, ns) for k, ns in op[1]]
                elif kind == _SLEEP:
                    time.sleep(op[1])
                    result = None
                else:
                    self._exclusive(op[1], op[2], op[3])
                    result = None
                op = steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def peek(self, ns: str, id: str, rule: Rule, now: float) -> Outcome:
        self.counters.reads += 1
        return self._peeked(self._read(self.key(ns, id), ns), rule, now)

    def reset(self, ns: str, id: str) -> None:
        key = self.key(ns, id)
        self._guesses.pop(key, None)
        self._remove(key, ns)

    def clear(self, ns: Optional[str] = None) -> None:
        self._guesses.clear()
        self._remove_all(ns)


class AsyncCasStore(_CasCore[V]):
    """The asyncio form of ``CasStore``: the same loop, with coroutine I/O methods (``_read``, ``_write``,
    ``_remove``, ``_remove_all``, optional ``_exclusive``: the same contract, awaited). Checks of one key in one event
    loop coalesce: while one is in flight the next ones wait, then go as one group (one read, one write), up to 256.
    A check whose caller gives up (the limiter's timeout cancels it) leaves the group it joined to finish."""

    synchronous = False

    def __init__(self, store_name: str, max_attempts: int = 100, expiry_grace_ms: int = 0) -> None:
        super().__init__(store_name, max_attempts, expiry_grace_ms)
        self._queues: dict[str, List[_Check]] = {}
        self._set_queues: dict[str, List[_Check]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def _read(self, key: str, ns: str) -> Optional[Versioned[V]]:
        raise NotImplementedError

    async def _write(self, key: str, ns: str, next: Next, prev: Optional[Versioned[V]]) -> Written[V]:
        raise NotImplementedError

    async def _remove(self, key: str, ns: str) -> None:
        raise NotImplementedError

    async def _remove_all(self, ns: Optional[str]) -> None:
        raise NotImplementedError

    async def _exclusive(self, key: str, ns: str, apply: Apply) -> None:
        """Only called when a subclass sets ``exclusive_after``: it then overrides this."""
        raise NotImplementedError

    async def consume(self, ns: str, id: str, rule: Rule, now: float, cost: float) -> Outcome:
        self._saw(now)
        key = self.key(ns, id)
        run: _Run = lambda g: self._update(key, ns, g)  # noqa: E731
        return cast(Outcome, await self._join(self._queues, key, _Check(rule, now, cost), run))

    async def consume_set(self, id: str, rules: Sequence[Rule], now: float, costs: Sequence[float]) -> List[Outcome]:
        """``CasStore.consume_set`` for asyncio code."""
        self._saw(now)
        keys = [self.key(r.ns, id) for r in rules]
        run: _Run = lambda g: self._update_set(keys, g)  # noqa: E731
        return cast(
            List[Outcome], await self._join(self._set_queues, "\n".join(keys), _SetCheck(rules, now, costs), run)
        )

    async def _join(self, queues: dict[str, List[_Check]], key: str, check: _Check, run: _Run) -> Any:
        queue = queues.get(key)
        if queue is not None:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            check.future = fut
            queue.append(check)
            return await fut
        # Nothing in flight: this check goes at once, in the caller's task; checks that arrive meanwhile queue,
        # and a task of their own runs them after it (so that a caller cancelled by its timeout strands nobody).
        queues[key] = []
        try:
            return (await self._drive(run([check])))[0]
        finally:
            self._next(queues, key, run)

    def _next(self, queues: dict[str, List[_Check]], key: str, run: _Run) -> None:
        queue = queues[key]
        if not queue:
            del queues[key]
            return
        task = asyncio.ensure_future(self._run(queues, key, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, queues: dict[str, List[_Check]], key: str, run: _Run) -> None:
        """Run the key's waiting checks, group after group, until none is left."""
        queue = queues[key]
        while queue:
            group = queue[:MAX_GROUP]
            del queue[:MAX_GROUP]
            try:
                outcomes = await self._drive(run(group))
            except BaseException as error:
                for c in group:
                    if c.future is not None and not c.future.done():
                        c.future.set_exception(error)
                if not isinstance(error, Exception):  # cancelled (the loop is closing): answer everyone, stop
                    for c in queue:
                        if c.future is not None and not c.future.done():
                            c.future.set_exception(error)
                    del queues[key]
                    raise
                continue
            for c, o in zip(group, outcomes):
                if c.future is not None and not c.future.done():
                    c.future.set_result(o)
        del queues[key]

    async def _drive(self, steps: _Steps) -> List[Any]:
        """Perform the loop's I/O requests with this store's coroutines."""
        try:
            op = next(steps)
            while True:
                kind = op[0]
                if kind == _READ:
                    result: Any = await self._read(op[1], op[2])
                elif kind == _WRITE:
                    result = await self._write(op[1], op[2], op[3], op[4])
                elif kind == _READ_ALL:
                    result = list(await asyncio.gather(*(self._read(k, ns) for k, ns in op[1])))
                elif kind == _SLEEP:
                    await asyncio.sleep(op[1])
                    result = None
                else:
                    await self._exclusive(op[1], op[2], op[3])
                    result = None
                op = steps.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def peek(self, ns: str, id: str, rule: Rule, now: float) -> Outcome:
        self.counters.reads += 1
        return self._peeked(await self._read(self.key(ns, id), ns), rule, now)

    async def reset(self, ns: str, id: str) -> None:
        key = self.key(ns, id)
        self._guesses.pop(key, None)
        await self._remove(key, ns)

    async def clear(self, ns: Optional[str] = None) -> None:
        self._guesses.clear()
        await self._remove_all(ns)


# ---- what the stores on this loop share besides it ----------------------------------------------------------------


def check_timeout(store_name: str, timeout: object) -> float:
    """A store's own ``timeout`` (ms), checked: what bounds each call of a synchronous store (nothing outside can
    abandon a blocking call)."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < math.inf:
        raise HaltConfigError(
            "HALT_INVALID_TIMEOUT",
            f"{store_name}: timeout must be a positive number of milliseconds, got {timeout!r}. Fix: timeout=500.",
        )
    return float(timeout)


def check_cleanup_interval(store_name: str, interval: object, fix: str) -> float:
    """A ``cleanup_interval`` (ms between deletions of expired keys by this process; 0: none), checked."""
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or not 0 <= interval < math.inf:
        raise HaltConfigError(
            "HALT_INVALID_CLEANUP_INTERVAL",
            f"{store_name}: cleanup_interval must be milliseconds >= 0, got {interval!r}. Fix: {fix}.",
        )
    return float(interval)


def start_cleanup_thread(store: Any, every_s: float, stop: threading.Event, name: str) -> None:
    """A daemon thread calling ``store.cleanup_expired()`` every ``every_s`` until ``stop`` is set. It holds the
    store weakly, so an unused store is still collected (and the thread ends)."""
    ref = weakref.ref(store)

    def run() -> None:
        while not stop.wait(every_s):
            s = ref()
            if s is None:
                return
            with contextlib.suppress(Exception):  # a server that is down is the failure policy's business
                s.cleanup_expired()
            del s

    threading.Thread(target=run, name=name, daemon=True).start()


def start_cleanup_task(store: Any, every_s: float) -> asyncio.Task[None]:
    """``start_cleanup_thread()`` for an asyncio store: a task of the running loop awaiting
    ``store.cleanup_expired()`` every ``every_s``, holding the store weakly; cancel it to stop."""
    ref = weakref.ref(store)

    async def run() -> None:
        while True:
            await asyncio.sleep(every_s)
            s = ref()
            if s is None:
                return
            with contextlib.suppress(Exception):  # a server that is down is the failure policy's business
                await s.cleanup_expired()
            del s

    return asyncio.ensure_future(run())


__all__ = [
    "GUESSES",
    "MAX_GROUP",
    "MAX_KEY_BYTES",
    "UNKNOWN",
    "AsyncCasStore",
    "CasConflictError",
    "CasCounters",
    "CasStore",
    "Next",
    "Versioned",
    "Written",
    "bounded_key",
    "check_cleanup_interval",
    "check_prefix",
    "check_timeout",
    "has_space_or_control",
    "key_digest",
    "new_version",
    "start_cleanup_task",
    "start_cleanup_thread",
    "utf8",
]
