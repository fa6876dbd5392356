"""Halt's stores: InMemoryStore here; Redis in halt.stores.redis (extra ``redis``)."""

from halt.stores.memory import InMemoryStore

__all__ = ["InMemoryStore"]
