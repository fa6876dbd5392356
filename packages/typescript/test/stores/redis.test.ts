// RedisStore on real servers: the conformance suite (ioredis and node-redis, single Redis and a 3-master Cluster),
// then what is Redis's own: the scripts, one round trip per check, NOSCRIPT, key slots, server time, the blocked-key cache.
import { execFileSync } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import type { Cluster, Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AlgorithmName, compilePolicy, evaluate, HaltConfigError, type Policy, type Rule } from '../../src/index.js'
import { RedisStore, type RedisStoreOptions, SCRIPTS, SHA1, storageKey } from '../../src/stores/redis/index.js'
import { keySlot } from '../../src/stores/redis/keys.js'
import { SPEC_DIR } from '../support/vectors.js'
import { ALGORITHMS, type StoreHarness, storeConformance } from './conformance.js'
import { type ClientKind, type Connected, connect, storeOptions } from './redis-clients.js'
import { server } from './servers.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const REDIS = server('HALT_TEST_REDIS_URL')
const CLUSTER = server('HALT_TEST_REDIS_CLUSTER_NODES')
const T0 = 1_700_000_000_000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** Vectors run on frozen explicit times while Redis expires keys in real time: keep keys 1 s past their expiry. */
const GRACE_MS = 1000
/** A stored state: little-endian IEEE-754 doubles (spec/KEYS.md). */
const doubles = (raw: Buffer) => Array.from({ length: raw.length / 8 }, (_, i) => raw.readDoubleLE(8 * i))
const prefixFor = (label: string) => `halt-test-${label}-${randomUUID().slice(0, 8)}:`

/** Masters of a single server (itself) or of a Cluster. */
function masters(c: Connected): Redis[] {
  const client = c.client as Redis | Cluster
  return 'isCluster' in client && client.isCluster ? (client as Cluster).nodes('master') : [client as Redis]
}

function redisHarness(kind: ClientKind, conn: string, batch: 'true' | 'false'): StoreHarness<RedisStore> {
  const cluster = kind.endsWith('cluster')
  const prefix = prefixFor(kind)
  let opened: Connected
  let inspector: Connected
  return {
    name: `RedisStore (${kind}, batch ${batch})`,
    graceMs: GRACE_MS,
    async create() {
      inspector = await connect(cluster ? 'ioredis-cluster' : 'ioredis', conn)
      opened = await connect(kind, conn, batch !== 'false')
      return new RedisStore({ client: opened.client, ...storeOptions(prefix, batch, GRACE_MS) })
    },
    async dispose(store) {
      await store.clear()
      await opened.close()
      await inspector.close()
    },
    // The stored value read the way any SDK reads it: little-endian doubles.
    async inspect(store, ns, id) {
      const key = store.key(ns, id)
      const r = inspector.client as Redis
      const [raw, ttl] = await Promise.all([r.getBuffer(key), r.pttl(key)])
      return raw === null ? undefined : { state: doubles(raw), ttlMs: ttl }
    },
    expire: async (_store, at) => {
      await sleep(Math.max(0, at - Date.now()) + 25)
    },
    async stall(_store, ms) {
      await Promise.all(masters(inspector).map((m) => m.call('CLIENT', 'PAUSE', String(ms), 'ALL')))
      await sleep(ms)
    },
    processes: { module: join(HERE, 'redis-clients.ts'), args: () => [kind, conn, prefix, batch, String(GRACE_MS)] },
  }
}

const suites: [ClientKind, string | undefined, 'true' | 'false'][] = [
  ['ioredis', REDIS, 'true'],
  ['ioredis', REDIS, 'false'],
  ['node-redis', REDIS, 'true'],
  ['ioredis-cluster', CLUSTER, 'true'],
  ['ioredis-cluster', CLUSTER, 'false'],
  ['node-redis-cluster', CLUSTER, 'true'],
]
for (const [kind, conn, batch] of suites) {
  describe.skipIf(conn === undefined)(`${kind}, batch ${batch}`, () => {
    if (conn !== undefined) storeConformance(redisHarness(kind, conn, batch))
  })
}

/** A RedisStore on a connection of its own; closed after the file. */
function storeOn(kind: ClientKind, conn: string | undefined, options: Omit<RedisStoreOptions, 'client'> = {}) {
  const ctx = { store: undefined as unknown as RedisStore, c: undefined as unknown as Connected }
  beforeAll(async () => {
    ctx.c = await connect(kind, conn as string)
    ctx.store = new RedisStore({ client: ctx.c.client, prefix: prefixFor('x'), ...options })
  })
  afterAll(async () => {
    await ctx.store?.clear()
    await ctx.c?.close()
  })
  return ctx
}

describe('the scripts', () => {
  it('are spec/redis/<algorithm>.lua byte for byte, with the SHA1 of those bytes', () => {
    for (const name of ALGORITHMS) {
      const file = readFileSync(join(SPEC_DIR, 'redis', `${name}.lua`), 'utf8')
      expect(SCRIPTS[name]).toBe(file)
      expect(SHA1[name]).toBe(createHash('sha1').update(file).digest('hex'))
    }
  })

  it('are up to date with spec/redis/src (the generator, in --check mode)', () => {
    expect(() => execFileSync('python3', [join(SPEC_DIR, 'tools', 'build_redis.py'), '--check'], { stdio: 'pipe' })).not.toThrow()
  })
})

describe('keys', () => {
  it('are <prefix><policy>:<algorithm code>:{<identity>}, with %, { and } percent-encoded', () => {
    expect(storageKey('halt:', 'api:tb', 'ip:203.0.113.7')).toBe('halt:api:tb:{ip:203.0.113.7}')
    expect(storageKey('halt:', 'a{b}:gcra', 'x}{%')).toBe('halt:a%7Bb%7D:gcra:{x%7D%7B%25}')
  })

  it('hash slots are CRC16 (XMODEM) of the tag, modulo 16384, as Redis Cluster computes them', () => {
    expect(keySlot('123456789')).toBe(0x31c3) // the CRC16/XMODEM check value
    expect(keySlot('foo')).toBe(12182)
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'))
    expect(keySlot('foo{}{bar}')).not.toBe(keySlot('bar')) // an empty tag: the whole key is hashed
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar'))
  })

  it('put every policy of one identity in one hash slot (the tag is the identity)', () => {
    for (const id of ['user:42', '{', '}x', 'ünï', '']) {
      const slots = new Set(['api:tb', 'login:gcra', 'a{b}:sw'].map((ns) => keySlot(storageKey('halt:', ns, id))))
      if (id !== '') expect(slots.size, id).toBe(1)
    }
  })

  it('rejects a prefix that would move the hash tag, and other bad options, at construction', () => {
    const client = { evalsha: async () => 0, eval: async () => 0, del: async () => 0, deleteMatching: async () => 0, cluster: false }
    const bad: [Partial<RedisStoreOptions>, string][] = [
      [{ prefix: 'a{b}:' }, 'HALT_INVALID_REDIS_PREFIX'],
      [{ prefix: '' }, 'HALT_INVALID_REDIS_PREFIX'],
      [{ time: 'local' as never }, 'HALT_INVALID_REDIS_TIME'],
      [{ batch: 0 }, 'HALT_INVALID_REDIS_BATCH'],
      [{ batch: 1.5 }, 'HALT_INVALID_REDIS_BATCH'],
      [{ blockedKeyCache: { maxKeys: 0 } }, 'HALT_INVALID_BLOCKED_KEY_CACHE'],
      [{ blockedKeyCache: 'yes' as never }, 'HALT_INVALID_BLOCKED_KEY_CACHE'],
      [{ expiryGraceMs: -1 }, 'HALT_INVALID_EXPIRY_GRACE'],
      [{ expiryGraceMs: 0.5 }, 'HALT_INVALID_EXPIRY_GRACE'],
      [{ client: {} as never }, 'HALT_INVALID_REDIS_CLIENT'],
      [{ client: undefined as never }, 'HALT_INVALID_REDIS_CLIENT'],
    ]
    for (const [options, code] of bad) {
      let error: unknown
      try {
        new RedisStore({ client, ...options })
      } catch (e) {
        error = e
      }
      expect(error, code).toBeInstanceOf(HaltConfigError)
      expect((error as HaltConfigError).code).toBe(code)
    }
  })
})

describe.skipIf(CLUSTER === undefined)('keys on a Redis Cluster', () => {
  const ctx = storeOn('ioredis-cluster', CLUSTER)

  it('hash slots computed here are the ones the Cluster computes', async () => {
    const cluster = ctx.c.client as Cluster
    const ids = ['user:42', '{', '}', '{}', 'x}y', '%7B', 'ünïcödé', '🚦', '', 'a'.repeat(1000)]
    for (const id of ids) {
      const key = ctx.store.key('api:tb', id)
      expect(keySlot(key), JSON.stringify(id)).toBe(Number(await cluster.call('CLUSTER', 'KEYSLOT', key)))
    }
  })

  it('checks on keys in many slots, issued together, are each answered (no CROSSSLOT)', async () => {
    const rule = compilePolicy({ name: 'spread', limit: 1, window: 60 })
    const outs = await Promise.all(Array.from({ length: 300 }, (_, i) => ctx.store.consume(rule.ns, `u${i}`, rule, T0, 1)))
    expect(outs.every((o) => o.allowed)).toBe(true)
    const again = await Promise.all(Array.from({ length: 300 }, (_, i) => ctx.store.consume(rule.ns, `u${i}`, rule, T0, 1)))
    expect(again.every((o) => !o.allowed)).toBe(true)
  })
})

describe.skipIf(REDIS === undefined)('round trips (observed with MONITOR)', () => {
  const unbatched = storeOn('ioredis', REDIS, { batch: false })
  const batched = storeOn('ioredis', REDIS)

  /** Commands the server saw from `client`'s connection and from scripts, while `fn` ran. */
  async function observe(client: Redis, fn: () => Promise<unknown>) {
    const monitor = await (client.duplicate() as Redis).monitor()
    const port = client.stream.localPort
    const seen: { from: 'client' | 'lua'; command: string; args: string[] }[] = []
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const from = source === 'lua' ? 'lua' : source.endsWith(`:${port}`) ? 'client' : undefined
      if (from) seen.push({ from, command: String(args[0]).toUpperCase(), args })
    })
    await sleep(20)
    await fn()
    await sleep(50)
    monitor.disconnect()
    return seen
  }

  it('one EVALSHA per check, running one GET and one SET', async () => {
    const store = unbatched.store
    const rule = compilePolicy({ name: 'rt', limit: 100, window: 60 })
    await store.consume(rule.ns, 'warm', rule, T0, 1) // first use sends the script (EVAL)
    const seen = await observe(unbatched.c.client as Redis, async () => {
      for (let i = 0; i < 20; i++) await store.consume(rule.ns, `k${i % 4}`, rule, T0 + i, 1)
    })
    const count = (from: string, command: string) => seen.filter((s) => s.from === from && s.command === command).length
    expect(count('client', 'EVALSHA')).toBe(20)
    expect(seen.filter((s) => s.from === 'client').length).toBe(20)
    expect(count('lua', 'GET')).toBe(20)
    expect(count('lua', 'SET')).toBe(20)
  })

  it('with nothing in flight a check goes at once; checks issued meanwhile wait for the end of the turn', async () => {
    const store = batched.store
    const rule = compilePolicy({ name: 'rtn', limit: 100, window: 60 })
    await store.consume(rule.ns, 'warm', rule, T0, 1)
    const calls = store.counters.calls
    const first = store.consume(rule.ns, 'a', rule, T0, 1)
    expect(store.counters.calls).toBe(calls + 1) // sent before consume() returned
    const second = store.consume(rule.ns, 'b', rule, T0, 1)
    expect(store.counters.calls).toBe(calls + 1) // one call in flight: this one waits to be batched
    await Promise.all([first, second])
    expect(store.counters.calls).toBe(calls + 2)
  })

  it('checks issued together go in one script call (batched), repeated keys read and written once', async () => {
    const store = batched.store
    const rule = compilePolicy({ name: 'rtb', limit: 100, window: 60 })
    await store.consume(rule.ns, 'warm', rule, T0, 1)
    const seen = await observe(batched.c.client as Redis, () =>
      // The first goes alone (nothing was in flight), the 30 issued after it together.
      Promise.all([store.consume(rule.ns, 'lead', rule, T0, 1), ...Array.from({ length: 30 }, (_, i) => store.consume(rule.ns, `k${i % 5}`, rule, T0, 1))]),
    )
    const evalsha = seen.filter((s) => s.from === 'client' && s.command === 'EVALSHA')
    expect(evalsha.map((s) => s.args[2])).toEqual(['1', '30'])
    expect(seen.filter((s) => s.from === 'lua' && s.command === 'GET').length).toBe(6)
    expect(seen.filter((s) => s.from === 'lua' && s.command === 'SET').length).toBe(6)
  })

  it('a larger batch goes as calls of even size (at most 32 keys), so that several are in flight at once', async () => {
    const store = batched.store
    const rule = compilePolicy({ name: 'rtb2', limit: 1000, window: 60 })
    await store.consume(rule.ns, 'warm', rule, T0, 1)
    const seen = await observe(batched.c.client as Redis, () =>
      Promise.all([store.consume(rule.ns, 'lead', rule, T0, 1), ...Array.from({ length: 100 }, (_, i) => store.consume(rule.ns, `k${i}`, rule, T0, 1))]),
    )
    const evalsha = seen.filter((s) => s.from === 'client' && s.command === 'EVALSHA')
    expect(evalsha.map((s) => s.args[2])).toEqual(['1', '25', '25', '25', '25'])
  })

  it('reloads a script on NOSCRIPT (SCRIPT FLUSH, or a restarted server) and carries on', async () => {
    const store = unbatched.store
    const rule = compilePolicy({ name: 'noscript', limit: 3, window: 60, algorithm: 'gcra' })
    expect((await store.consume(rule.ns, 'a', rule, T0, 1)).remaining).toBe(2)
    await (unbatched.c.client as Redis).script('FLUSH')
    const loads = store.counters.scriptLoads
    expect((await store.consume(rule.ns, 'a', rule, T0, 1)).remaining).toBe(1)
    expect(store.counters.scriptLoads).toBe(loads + 1)
    expect((await store.consume(rule.ns, 'a', rule, T0, 1)).remaining).toBe(0)
    expect(store.counters.scriptLoads).toBe(loads + 1)
  })

  it('a script error (a cost the limiter would have refused) rejects the call with the server error', async () => {
    const rule = compilePolicy({ name: 'bad', limit: 3, window: 60 })
    await expect(unbatched.store.consume(rule.ns, 'a', rule, T0, -1)).rejects.toThrow(/HALT_BAD_COST/)
  })
})

describe.skipIf(REDIS === undefined)('the scripts are the algorithms: random traffic through Redis and through the TypeScript functions', () => {
  // Explicit times run slower than the real clock that expires keys: a grace keeps every state until the run is over.
  const ctx = storeOn('ioredis', REDIS, { expiryGraceMs: 60_000 })

  const policyArb = fc
    .record({
      algorithm: fc.constantFrom(...ALGORITHMS),
      limit: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.double({ min: 0.5, max: 50, noNaN: true })),
      window: fc.constantFrom(0.001, 0.5, 1, 2.5, 7, 60, 86_400),
      extraBurst: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 10 }), fc.double({ min: 0.01, max: 3, noNaN: true })),
      block: fc.constantFrom(0, 0, 1, 2.5),
      precision: fc.integer({ min: 1, max: 30 }),
      shaping: fc.boolean(),
    })
    .map(
      (p): Policy => ({
        name: `prop-${randomUUID().slice(0, 8)}`,
        algorithm: p.algorithm as AlgorithmName,
        limit: p.limit,
        window: p.window,
        burst: p.limit + p.extraBurst,
        blockDuration: p.block,
        precision: p.precision,
        leakyMode: p.shaping ? 'shaping' : 'meter',
        cost: 0,
      }),
    )
  const stepsArb = fc.array(
    fc.record({
      // Gaps: none, short, a clock stepping back, long idle periods.
      gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: -2_000, max: -1 }), fc.integer({ min: 0, max: 200_000_000 })),
      cost: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 5 }), fc.double({ min: 0, max: 8, noNaN: true })),
      peek: fc.integer({ min: 0, max: 9 }).map((x) => x < 2),
      key: fc.constantFrom('a', 'b'),
    }),
    { minLength: 1, maxLength: 40 },
  )

  /** ARGV of the scripts (spec/redis/README.md), built here from the contract rather than by the store. */
  const argv = (rule: Rule, t: number, cost: number | 'peek') => [
    String(t),
    ...[rule.limit, rule.windowMs, rule.burst, rule.blockMs, rule.precision].map(String),
    rule.shaping ? '1' : '0',
    '60000', // expiry grace: a key with a 1 ms TTL must not expire between the GET and the script of one transaction
    String(cost),
  ]

  it('one step on any reachable state: the script and the TypeScript function give the same outcome and state', async () => {
    const redis = ctx.c.client as Redis
    await fc.assert(
      fc.asyncProperty(policyArb, stepsArb, async (policy, steps) => {
        const rule = compilePolicy(policy)
        const key = ctx.store.key(rule.ns, 'k')
        let t = T0
        for (const s of steps) {
          t += s.gap
          // State before, the script's step, state after: one transaction, so no expiry can fall in between.
          const [[, before], [, reply], [, after]] = (await redis
            .multi()
            .getBuffer(key)
            .eval(SCRIPTS[rule.algorithm.name as AlgorithmName], 1, key, ...argv(rule, t, s.peek ? 'peek' : s.cost))
            .getBuffer(key)
            .exec()) as [[unknown, Buffer | null], [unknown, unknown[]], [unknown, Buffer | null]]
          const state = before === null ? undefined : doubles(before)
          const m = evaluate(state, t, s.peek ? 0 : s.cost, rule)
          const o = m.outcome
          // Numbers come back as integer replies, or as exact strings when fractional.
          expect(reply.slice(0, 7).map(Number)).toEqual([
            t,
            [undefined, 'limit', 'cooldown', 'cost_exceeds_capacity'].indexOf(o.reason),
            o.remaining,
            o.resetAtMs,
            o.retryAfterMs,
            o.delayMs,
            o.expiresAtMs,
          ])
          const written = s.peek || o.reason === 'cooldown' ? state : m.state
          expect(after === null ? undefined : doubles(after)).toEqual(written)
          // A rejection also returns the state (the blocked-key cache runs the algorithm on it).
          expect(o.reason === undefined ? reply[7] : (reply[7] as unknown[]).map(Number)).toEqual(o.reason === undefined ? 0 : m.state)
        }
      }),
      { numRuns: 200 },
    )
  })

  it('checks issued together (one script call, keys repeated) agree with the same checks one after another', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb, stepsArb, async (policy, steps) => {
        const rule = compilePolicy(policy)
        const outs = await Promise.all(
          steps.map((s) => (s.peek ? ctx.store.peek(rule.ns, s.key, rule, T0) : ctx.store.consume(rule.ns, s.key, rule, T0, s.cost))),
        )
        const model = new Map<string, number[]>()
        steps.forEach((s, i) => {
          const m = evaluate(model.get(s.key), T0, s.peek ? 0 : s.cost, rule)
          expect(outs[i]).toEqual(m.outcome)
          if (!s.peek) model.set(s.key, m.state)
        })
      }),
      { numRuns: 100 },
    )
  })

  it('the stored state is what the Python reference model reads and continues from', async () => {
    const rule = compilePolicy({ name: `py-${randomUUID().slice(0, 8)}`, limit: 7, window: 3, burst: 9.5, algorithm: 'token_bucket' })
    let t = T0
    for (const cost of [0.1, 2.7, 1 / 3, 4]) {
      t += 137
      await ctx.store.consume(rule.ns, 'py', rule, t, cost)
    }
    const raw = (await (ctx.c.client as Redis).getBuffer(ctx.store.key(rule.ns, 'py'))) as Buffer
    const next = t + 401
    const program = [
      'import json, struct, sys',
      `sys.path.insert(0, ${JSON.stringify(join(SPEC_DIR, 'tools'))})`,
      'from reference import evaluate',
      `raw = bytes.fromhex('${raw.toString('hex')}')`,
      "state = list(struct.unpack('<%dd' % (len(raw) // 8), raw))",
      `out, s = evaluate('token_bucket', {'limit': 7, 'window': 3, 'burst': 9.5}, state, ${next}, 2.5)`,
      'print(json.dumps({"out": out, "state": s}))',
    ].join('\n')
    const py = JSON.parse(execFileSync('python3', ['-c', program], { encoding: 'utf8' }))
    const o = await ctx.store.consume(rule.ns, 'py', rule, next, 2.5)
    expect({ allowed: o.allowed, remaining: o.remaining, reset_at_ms: o.resetAtMs, retry_after_ms: o.retryAfterMs }).toEqual({
      allowed: py.out.allowed,
      remaining: py.out.remaining,
      reset_at_ms: py.out.reset_at_ms,
      retry_after_ms: py.out.retry_after_ms,
    })
    const after = (await (ctx.c.client as Redis).getBuffer(ctx.store.key(rule.ns, 'py'))) as Buffer
    expect(doubles(after)).toEqual(py.state)
  })
})

describe.skipIf(REDIS === undefined)("time: the server's clock", () => {
  const serverTime = storeOn('ioredis', REDIS, { time: 'server' })
  const clientTime = storeOn('ioredis', REDIS)

  it('app servers whose clocks disagree by an hour share one timeline', async () => {
    const rule = compilePolicy({ name: `skew-${randomUUID().slice(0, 8)}`, limit: 5, window: 60 })
    const behind = Date.now() - 3_600_000
    const ahead = Date.now() + 3_600_000
    for (let i = 0; i < 5; i++) expect((await serverTime.store.consume(rule.ns, 'u', rule, behind, 1)).allowed).toBe(true)
    const o = await serverTime.store.consume(rule.ns, 'u', rule, ahead, 1)
    expect(o.allowed).toBe(false)
    // Times are the server's: a refill of one unit (12 s) from about now.
    expect(Math.abs(o.resetAtMs - (Date.now() + 60_000))).toBeLessThan(2_000)
    expect(o.retryAfterMs).toBeGreaterThan(11_000)
  })

  it("with the callers' clocks (the default) the clock that runs ahead sees a refilled bucket", async () => {
    const rule = compilePolicy({ name: `skewc-${randomUUID().slice(0, 8)}`, limit: 5, window: 60 })
    for (let i = 0; i < 5; i++) await clientTime.store.consume(rule.ns, 'u', rule, Date.now() - 3_600_000, 1)
    expect((await clientTime.store.consume(rule.ns, 'u', rule, Date.now() + 3_600_000, 1)).allowed).toBe(true)
  })
})

describe.skipIf(REDIS === undefined)('blocked-key cache', () => {
  const prefix = prefixFor('cache')
  // Explicit times: a grace keeps the states of both stores until the test is over (expiry is not under test here).
  const cached = storeOn('ioredis', REDIS, { prefix, blockedKeyCache: true, expiryGraceMs: 60_000 })
  const plain = storeOn('ioredis', REDIS, { prefix, expiryGraceMs: 60_000 })
  const cachedServerTime = storeOn('ioredis', REDIS, { blockedKeyCache: true, time: 'server' })

  /** Run the same schedule through both stores (separate namespaces); every outcome must agree. */
  async function compare(policy: Policy, schedule: [number, number][]) {
    const a = compilePolicy({ ...policy, name: `c-${randomUUID().slice(0, 8)}` })
    const b = compilePolicy({ ...policy, name: `p-${randomUUID().slice(0, 8)}` })
    const calls = cached.store.counters.calls
    const hits = cached.store.counters.cacheHits
    for (const [t, cost] of schedule) {
      const x = await cached.store.consume(a.ns, 'abuser', a, t, cost)
      const y = await plain.store.consume(b.ns, 'abuser', b, t, cost)
      expect(x, `t=${t}`).toEqual(y)
    }
    return { calls: cached.store.counters.calls - calls, hits: cached.store.counters.cacheHits - hits }
  }

  it('an abusive client over the limit is answered in process, with the decisions Redis would give', async () => {
    const schedule: [number, number][] = Array.from({ length: 1000 }, (_, i) => [T0 + i * 10, 1])
    const { calls, hits } = await compare({ limit: 10, window: 60 }, schedule)
    // 10 admitted, 1 refill during the 10 s: 11 admissions; each run of rejections costs one round trip.
    expect(calls).toBeLessThanOrEqual(25)
    expect(hits).toBe(1000 - calls)
  })

  it('every algorithm, with costs, refills and cooldowns: the same outcomes as without the cache', async () => {
    for (const algorithm of ALGORITHMS) {
      for (const blockDuration of [0, 5]) {
        const schedule: [number, number][] = []
        let t = T0
        for (let i = 0; i < 400; i++) {
          t += [0, 1, 7, 250, 1_500][i % 5] as number
          schedule.push([t, [1, 1, 2, 0.5, 3][i % 5] as number])
        }
        const { hits } = await compare({ limit: 4, window: 2, algorithm, blockDuration, precision: 4 }, schedule)
        expect(hits, `${algorithm} block ${blockDuration}`).toBeGreaterThan(0)
      }
    }
  })

  it('a rejection seen by another process is never turned into an admission here', async () => {
    const rule = compilePolicy({ name: `x-${randomUUID().slice(0, 8)}`, limit: 2, window: 60 })
    await cached.store.consume(rule.ns, 'k', rule, T0, 2)
    expect((await cached.store.consume(rule.ns, 'k', rule, T0, 1)).allowed).toBe(false) // now cached
    await plain.store.consume(rule.ns, 'k', rule, T0 + 30_000, 1) // another process takes the refilled unit
    const o = await cached.store.consume(rule.ns, 'k', rule, T0 + 30_000, 1) // the cache projects an admission: asks Redis
    expect(o.allowed).toBe(false)
  })

  it('reset() forgets the cached rejection at once', async () => {
    const rule = compilePolicy({ name: `r-${randomUUID().slice(0, 8)}`, limit: 1, window: 60, blockDuration: 600 })
    await cached.store.consume(rule.ns, 'k', rule, T0, 1)
    expect((await cached.store.consume(rule.ns, 'k', rule, T0, 1)).reason).toBe('limit')
    const hits = cached.store.counters.cacheHits
    expect((await cached.store.consume(rule.ns, 'k', rule, T0 + 1, 1)).reason).toBe('cooldown')
    expect(cached.store.counters.cacheHits).toBe(hits + 1)
    await cached.store.reset(rule.ns, 'k')
    expect((await cached.store.consume(rule.ns, 'k', rule, T0 + 2, 1)).allowed).toBe(true)
  })

  it("with the server's clock, the cache answers in the server's timeline", async () => {
    const rule = compilePolicy({ name: `s-${randomUUID().slice(0, 8)}`, limit: 1, window: 60, blockDuration: 600 })
    const skewed = () => Date.now() - 7_200_000 // this app server's clock is two hours behind
    await cachedServerTime.store.consume(rule.ns, 'k', rule, skewed(), 1)
    const first = await cachedServerTime.store.consume(rule.ns, 'k', rule, skewed(), 1)
    const hits = cachedServerTime.store.counters.cacheHits
    const second = await cachedServerTime.store.consume(rule.ns, 'k', rule, skewed(), 1)
    expect(cachedServerTime.store.counters.cacheHits).toBe(hits + 1)
    expect(second.reason).toBe('cooldown')
    expect(Math.abs(second.resetAtMs - first.resetAtMs)).toBeLessThan(50)
    expect(Math.abs(second.resetAtMs - (Date.now() + 600_000))).toBeLessThan(2_000)
  })
})
