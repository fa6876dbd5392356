// Client adapters: ioredis (Redis and Cluster) and node-redis (`redis`: client and cluster) behind one small interface.
import { HaltConfigError } from '../../core/errors.js'
import { keySlot } from './keys.js'

/**
 * What `RedisStore` needs from a Redis client. Pass an ioredis `Redis` or `Cluster`, or a node-redis client or
 * cluster, and the store builds one; implement it yourself for any other client.
 */
export interface RedisAdapter {
  /** True for Redis Cluster: the keys of one script call must then share a hash slot. */
  readonly cluster: boolean
  /** `EVALSHA sha numkeys keys.. args..`; rejects with the server's error (message `NOSCRIPT ...` when not loaded). */
  evalsha(sha: string, keys: string[], args: string[]): Promise<unknown>
  /** `EVAL script numkeys keys.. args..` (also loads the script into the server's cache). */
  eval(script: string, keys: string[], args: string[]): Promise<unknown>
  /** Delete one key. */
  del(key: string): Promise<unknown>
  /** Delete every key matching a glob pattern, on every master (SCAN + UNLINK). Returns how many were deleted. */
  deleteMatching(pattern: string): Promise<number>
}

/** The parts of an ioredis `Redis` the adapter uses. */
export interface IoredisLike {
  evalsha(sha: string, numKeys: number, ...args: string[]): Promise<unknown>
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>
  scan(cursor: string, match: 'MATCH', pattern: string, count: 'COUNT', n: string): Promise<[string, string[]]>
  unlink(...keys: string[]): Promise<number>
  del(...keys: string[]): Promise<number>
}

/** The parts of an ioredis `Cluster` the adapter uses. */
export interface IoredisClusterLike extends Omit<IoredisLike, 'scan'> {
  readonly isCluster: boolean
  nodes(role: 'master'): IoredisLike[]
}

/** The parts of a node-redis client (`createClient()` from `redis`) the adapter uses. */
export interface NodeRedisLike {
  sendCommand(args: string[]): Promise<unknown>
}

/** The parts of a node-redis cluster (`createCluster()` from `redis`) the adapter uses. */
export interface NodeRedisClusterLike {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>
  readonly masters: unknown[]
  nodeClient(node: never): Promise<NodeRedisLike> | NodeRedisLike
}

/** Any client `RedisStore` accepts. */
export type RedisClient = IoredisLike | IoredisClusterLike | NodeRedisLike | NodeRedisClusterLike | RedisAdapter

const has = (o: unknown, name: string): boolean => typeof (o as Record<string, unknown>)?.[name] === 'function'

/** Wrap a supported client (or return an adapter as is). Throws `HaltConfigError` for anything else. */
export function toAdapter(client: RedisClient): RedisAdapter {
  if (client === null || typeof client !== 'object') return invalid(client)
  if (has(client, 'deleteMatching') && has(client, 'evalsha')) return client as RedisAdapter
  if ((client as { isCluster?: unknown }).isCluster === true && has(client, 'nodes')) return ioredisCluster(client as IoredisClusterLike)
  if (has(client, 'evalsha') && has(client, 'scan')) return ioredis(client as IoredisLike)
  if (has(client, 'nodeClient') && has(client, 'sendCommand')) return nodeRedisCluster(client as NodeRedisClusterLike)
  if (has(client, 'sendCommand') && has(client, 'evalSha')) return nodeRedis(client as NodeRedisLike)
  return invalid(client)
}

function invalid(client: unknown): never {
  throw new HaltConfigError(
    'HALT_INVALID_REDIS_CLIENT',
    `RedisStore: client must be an ioredis Redis or Cluster, a node-redis client or cluster (from the redis package), or a RedisAdapter; got ${client === null ? 'null' : typeof client}. Fix: new RedisStore({ client: new Redis(url) }).`,
  )
}

const SCAN_COUNT = '1000'

/** Unlink keys in groups that share a hash slot (a multi-key command must stay in one slot on a cluster). */
async function unlinkBySlot(keys: string[], unlink: (keys: string[]) => Promise<unknown>, cluster: boolean): Promise<void> {
  if (!cluster) {
    if (keys.length > 0) await unlink(keys)
    return
  }
  const bySlot = new Map<number, string[]>()
  for (const k of keys) {
    const slot = keySlot(k)
    const group = bySlot.get(slot)
    if (group === undefined) bySlot.set(slot, [k])
    else group.push(k)
  }
  await Promise.all([...bySlot.values()].map(unlink))
}

/** SCAN one node for `pattern`, unlinking what it finds; returns the count. */
async function scanNode(
  scan: (cursor: string) => Promise<[string, string[]]>,
  unlink: (keys: string[]) => Promise<unknown>,
  cluster: boolean,
): Promise<number> {
  let cursor = '0'
  let n = 0
  do {
    const [next, keys] = await scan(cursor)
    await unlinkBySlot(keys, unlink, cluster)
    n += keys.length
    cursor = String(next)
  } while (cursor !== '0')
  return n
}

/** ioredis flattens array arguments itself: no spreading of long argument lists here. */
type Flat = (first: string, numKeys: number, keys: string[], args: string[]) => Promise<unknown>

function ioredis(c: IoredisLike, cluster = false): RedisAdapter {
  const evalsha = c.evalsha.bind(c) as unknown as Flat
  const evalScript = c.eval.bind(c) as unknown as Flat
  return {
    cluster,
    evalsha: (sha, keys, args) => evalsha(sha, keys.length, keys, args),
    eval: (script, keys, args) => evalScript(script, keys.length, keys, args),
    del: (key) => c.del(key),
    deleteMatching: (pattern) =>
      scanNode(
        (cursor) => c.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT),
        (keys) => c.unlink(...keys),
        cluster,
      ),
  }
}

function ioredisCluster(c: IoredisClusterLike): RedisAdapter {
  const evalsha = c.evalsha.bind(c) as unknown as Flat
  const evalScript = c.eval.bind(c) as unknown as Flat
  return {
    cluster: true,
    evalsha: (sha, keys, args) => evalsha(sha, keys.length, keys, args),
    eval: (script, keys, args) => evalScript(script, keys.length, keys, args),
    del: (key) => c.del(key),
    deleteMatching: async (pattern) => {
      const counts = await Promise.all(c.nodes('master').map((node) => ioredis(node, true).deleteMatching(pattern)))
      return counts.reduce((a, b) => a + b, 0)
    },
  }
}

function nodeRedis(c: NodeRedisLike, cluster = false): RedisAdapter {
  const send = (args: string[]) => c.sendCommand(args)
  return {
    cluster,
    evalsha: (sha, keys, args) => send(['EVALSHA', sha, String(keys.length), ...keys, ...args]),
    eval: (script, keys, args) => send(['EVAL', script, String(keys.length), ...keys, ...args]),
    del: (key) => send(['DEL', key]),
    deleteMatching: (pattern) =>
      scanNode(
        (cursor) => send(['SCAN', cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT]) as Promise<[string, string[]]>,
        (keys) => send(['UNLINK', ...keys]),
        cluster,
      ),
  }
}

function nodeRedisCluster(c: NodeRedisClusterLike): RedisAdapter {
  return {
    cluster: true,
    evalsha: (sha, keys, args) => c.sendCommand(keys[0], false, ['EVALSHA', sha, String(keys.length), ...keys, ...args]),
    eval: (script, keys, args) => c.sendCommand(keys[0], false, ['EVAL', script, String(keys.length), ...keys, ...args]),
    del: (key) => c.sendCommand(key, false, ['DEL', key]),
    deleteMatching: async (pattern) => {
      const nodes = await Promise.all(c.masters.map((m) => c.nodeClient(m as never)))
      const counts = await Promise.all(nodes.map((node) => nodeRedis(node, true).deleteMatching(pattern)))
      return counts.reduce((a, b) => a + b, 0)
    },
  }
}
