"""The store contract: make one key's update atomic and expire idle keys. Stores know nothing of HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Union

from typing_extensions import Protocol, runtime_checkable

if TYPE_CHECKING:
    from halt.core.policy import Rule
    from halt.core.types import Outcome


@runtime_checkable
class Store(Protocol):
    """A synchronous storage backend. A key is addressed by a namespace (``rule.ns``: the policy name and
    algorithm code) and an identity (e.g. ``ip:203.0.113.7``).

    ``consume`` must be atomic per key: load the state (a fresh one when missing, expired or of the wrong
    layout), run ``rule``'s algorithm step at ``now`` with ``cost``, save the new state with expiry
    ``outcome.expires_at_ms``.
    """

    #: True: every method returns its result directly. (AsyncStore: False.)
    synchronous: bool
    #: True when the state is shared between processes (Redis): the limiter then applies its failure
    #: policy around each call, and the API-key hash needs a shared secret.
    shared: bool

    def consume(self, ns: str, id: str, rule: Rule, now: float, cost: float) -> Outcome: ...

    def peek(self, ns: str, id: str, rule: Rule, now: float) -> Outcome:
        """The outcome of a cost-0 step, without writing anything."""
        ...

    def reset(self, ns: str, id: str) -> None:
        """Forget one key."""
        ...

    def clear(self, ns: Optional[str] = None) -> None:
        """Forget every key of a namespace, or of every namespace when none is given."""
        ...


@runtime_checkable
class AsyncStore(Protocol):
    """The asyncio form of Store (``synchronous`` False): every method is a coroutine."""

    synchronous: bool
    shared: bool

    async def consume(self, ns: str, id: str, rule: Rule, now: float, cost: float) -> Outcome: ...

    async def peek(self, ns: str, id: str, rule: Rule, now: float) -> Outcome: ...

    async def reset(self, ns: str, id: str) -> None: ...

    async def clear(self, ns: Optional[str] = None) -> None: ...


class SetStore(Store, Protocol):
    """A Store that decides limit sets: a limiter with several policies (or shadow ones) needs ``consume_set``.

    ``consume_set`` is one check of identity ``id`` against several rules (each under its ``rule.ns``), decided as
    ``evaluate_set()`` says (all or nothing across the enforced rules). ``costs[i]`` goes with ``rules[i]``; the
    outcomes come in the same order. Each store documents how atomic it is (docs/sets.md).
    """

    def consume_set(self, id: str, rules: Sequence[Rule], now: float, costs: Sequence[float]) -> list[Outcome]: ...


class AsyncSetStore(AsyncStore, Protocol):
    """The asyncio form of SetStore."""

    async def consume_set(
        self, id: str, rules: Sequence[Rule], now: float, costs: Sequence[float]
    ) -> list[Outcome]: ...


AnyStore = Union[Store, AsyncStore]
