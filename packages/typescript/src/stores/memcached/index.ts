// halt/memcached: MemcachedStore over memcache-client (gets / cas / add), and its key hashing.
export { CasConflictError, type CasCounters, type CasStoreOptions } from '../cas.js'
export { MEMCACHED_MAX_KEY_BYTES, memcachedKey } from './keys.js'
export { type MemcachedClientLike, MemcachedStore, type MemcachedStoreOptions, type MemcachedValue, type MemcachedVersion } from './store.js'
