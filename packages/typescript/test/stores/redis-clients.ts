// Redis clients for the tests (ioredis and node-redis, single server and Cluster), with the settings docs/redis.md recommends.
import { once } from 'node:events'
import { Cluster, Redis } from 'ioredis'
import { createClient, createCluster } from 'redis'
import type { Store } from '../../src/index.js'
import { ioredisClusterOptions, ioredisOptions, nodeRedisOptions, type RedisClient, RedisStore, type RedisStoreOptions } from '../../src/stores/redis/index.js'

export type ClientKind = 'ioredis' | 'ioredis-cluster' | 'node-redis' | 'node-redis-cluster'

export interface Connected {
  client: RedisClient
  close(): Promise<void>
}

/**
 * `conn`: a redis:// URL for a single server, `host:port,host:port,..` for a Cluster. `pipelining: false` turns
 * ioredis's auto-pipelining off: every command is then its own write, and commands of several processes interleave
 * finely on the server (the harsher test of atomicity).
 */
export async function connect(kind: ClientKind, conn: string, pipelining = true): Promise<Connected> {
  const nodes = conn.split(',').map((n) => {
    const [host, port] = n.split(':')
    return { host: host as string, port: Number(port) }
  })
  switch (kind) {
    case 'ioredis': {
      const client = new Redis(conn, { ...ioredisOptions, enableAutoPipelining: pipelining })
      client.on('error', () => {}) // reported through the failing commands
      await once(client, 'ready')
      return { client, close: async () => void client.disconnect() }
    }
    case 'ioredis-cluster': {
      const client = new Cluster(nodes, { ...ioredisClusterOptions, enableAutoPipelining: pipelining })
      client.on('error', () => {})
      await once(client, 'ready')
      return { client, close: async () => void client.disconnect() }
    }
    case 'node-redis': {
      const client = createClient({ url: conn, ...nodeRedisOptions })
      client.on('error', () => {}) // reported through the failing commands
      await client.connect()
      return { client, close: async () => void client.destroy() }
    }
    case 'node-redis-cluster': {
      const client = createCluster({ rootNodes: nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })), defaults: nodeRedisOptions })
      client.on('error', () => {})
      await client.connect()
      return { client, close: async () => void client.destroy() }
    }
  }
}

/** Options of the store under test, as strings (they travel to worker processes on the command line). */
export function storeOptions(prefix: string, batch: string, expiryGraceMs = 0): Omit<RedisStoreOptions, 'client'> {
  return { prefix, batch: batch === 'true' ? true : batch === 'false' ? false : Number(batch), expiryGraceMs }
}

/** For test/stores/worker.ts: a RedisStore on a new connection. */
export async function createStore(
  kind: ClientKind,
  conn: string,
  prefix: string,
  batch: string,
  grace: string,
): Promise<{ store: Store; close(): Promise<void> }> {
  const c = await connect(kind, conn, batch !== 'false')
  return { store: new RedisStore({ client: c.client, ...storeOptions(prefix, batch, Number(grace)) }), close: c.close }
}
