"""Halt's stores: InMemoryStore here; Redis, PostgreSQL and Memcached in halt.stores.redis, .postgres and .memcached
(extras ``redis``, ``postgres``, ``memcached``), on the compare-and-set loop of halt.stores.cas for the last two."""

from halt.stores.memory import InMemoryStore

__all__ = ["InMemoryStore"]
