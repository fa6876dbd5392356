// halt/redis: RedisStore (single server or Cluster; ioredis or node-redis) and the client settings Halt recommends.
export type { IoredisClusterLike, IoredisLike, NodeRedisClusterLike, NodeRedisLike, RedisAdapter, RedisClient } from './adapters.js'
export { storageKey } from './keys.js'
export { SCRIPTS, SHA1 } from './scripts.js'
export { RedisStore, type RedisStoreCounters, type RedisStoreOptions } from './store.js'

/** Reconnect soon, then every second at most, forever (the limiter's failure policy answers meanwhile). */
const reconnect = (attempt: number): number => Math.min(attempt * 100, 1000)

/**
 * ioredis settings for a rate limiter (docs/redis.md explains each): fail fast while Redis is unreachable,
 * so the limiter's `onStoreError` answers at once, instead of queueing checks that would run late and
 * consume after the fact; reconnect by itself. (No auto-pipelining: the store batches concurrent checks
 * itself, and ioredis's auto-pipelining would add latency to every call.)
 *
 * @example
 * const redis = new Redis(process.env.REDIS_URL!, ioredisOptions)
 * await once(redis, 'ready') // with the offline queue off, commands sent before this fail
 */
export const ioredisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  connectTimeout: 2000,
  retryStrategy: reconnect,
}

/**
 * The same for an ioredis `Cluster`.
 *
 * @example
 * const cluster = new Cluster([{ host: '10.0.0.1', port: 6379 }], ioredisClusterOptions)
 */
export const ioredisClusterOptions = {
  enableOfflineQueue: false,
  clusterRetryStrategy: reconnect,
  redisOptions: { maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, connectTimeout: 2000 },
}

/**
 * The same for node-redis (`createClient` or, as `defaults`, `createCluster`).
 *
 * @example
 * const client = await createClient({ url: process.env.REDIS_URL, ...nodeRedisOptions }).connect()
 */
export const nodeRedisOptions = {
  disableOfflineQueue: true,
  socket: { connectTimeout: 2000, reconnectStrategy: reconnect },
}
