"""Redis stores (extra ``redis``): the shared Lua scripts of spec/redis on redis-py, sync and asyncio, Cluster too."""

from halt.stores.redis.keys import escape_key_part, scan_pattern, storage_key
from halt.stores.redis.scripts import SCRIPTS, SHA1
from halt.stores.redis.store import AsyncRedisStore, RedisStore, RedisStoreCounters

__all__ = [
    "SCRIPTS",
    "SHA1",
    "AsyncRedisStore",
    "RedisStore",
    "RedisStoreCounters",
    "escape_key_part",
    "scan_pattern",
    "storage_key",
]
