// Clock trouble: app servers whose clocks disagree by seconds sharing one Redis, and clocks that step backwards.
// The bounds asserted are the ones docs/redis.md and spec/README.md document.
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AlgorithmName, compilePolicy, evaluate, type Policy, RateLimiter } from '../../src/index.js'
import { RedisStore } from '../../src/stores/redis/index.js'
import { ALGORITHMS } from './conformance.js'
import { type Connected, connect } from './redis-clients.js'
import { server } from './servers.js'

const REDIS = server('HALT_TEST_REDIS_URL')
const T0 = 1_700_000_000_000

describe('a clock that steps backwards admits no more than the time it has seen allows', () => {
  // Bound: whatever the order of the times, admitted units never exceed what a steady clock running from the first
  // time (when the state began) to the latest time seen could admit: burst + rate x span for the buckets, limit per window touched for the
  // window algorithms (a window the clock steps back into is not counted again).
  const step = fc.record({ gap: fc.oneof(fc.integer({ min: -30_000, max: -1 }), fc.integer({ min: 0, max: 3_000 })), cost: fc.constantFrom(1, 1, 2) })
  for (const algorithm of ALGORITHMS) {
    it(algorithm, () => {
      fc.assert(
        fc.property(fc.array(step, { minLength: 1, maxLength: 200 }), fc.integer({ min: 1, max: 10 }), (steps, limit) => {
          const policy: Policy = { algorithm, limit, window: 10, burst: limit + 2, precision: 5 }
          const rule = compilePolicy(policy)
          let state: number[] | undefined
          let t = T0
          let first: number | undefined
          let latest = -Infinity
          let admitted = 0
          for (const s of steps) {
            t += s.gap
            first ??= t
            latest = Math.max(latest, t)
            const r = evaluate(state, t, s.cost, rule)
            state = r.state
            if (r.outcome.allowed) admitted += s.cost
          }
          const span = latest - (first as number)
          const bound = rule.algorithm.windowed ? limit * (Math.floor(span / rule.windowMs) + 2) : rule.burst + (span * limit) / rule.windowMs + 1e-6
          expect(admitted).toBeLessThanOrEqual(bound)
        }),
        { numRuns: 300 },
      )
    })
  }
})

describe.skipIf(REDIS === undefined)('app servers with skewed clocks on one Redis', () => {
  const SKEWS = [-4_000, 0, 3_000] // ms: one server 4 s behind, one on time, one 3 s ahead
  const connections: Connected[] = []
  beforeAll(async () => {
    for (const _ of SKEWS) connections.push(await connect('ioredis', REDIS as string))
  })
  afterAll(async () => {
    await Promise.all(connections.map((c) => c.close()))
  })

  /** Three limiters, one per app server, hammering one key together; returns the units admitted in total. */
  async function hammer(algorithm: AlgorithmName, time: 'client' | 'server', limit: number, window: number) {
    const policy: Policy = { name: `skew-${randomUUID().slice(0, 8)}`, algorithm, limit, window }
    const limiters = SKEWS.map(
      (skew, i) =>
        new RateLimiter({
          store: new RedisStore({ client: (connections[i] as Connected).client, time }),
          policy,
          clock: () => Date.now() + skew,
        }),
    )
    const started = Date.now()
    let admitted = 0
    // Rounds of checks from every server in turn, each server's checks in flight together.
    for (let round = 0; round < 10; round++) {
      const ds = await Promise.all(limiters.flatMap((l) => Array.from({ length: 10 }, () => l.check('client-1'))))
      admitted += ds.filter((d) => d.allowed).length
    }
    return { admitted, elapsedMs: Date.now() - started }
  }

  for (const algorithm of ['token_bucket', 'gcra', 'leaky_bucket'] as const) {
    it(`${algorithm}: with time 'server' the skew does not matter; with the callers' clocks it is bounded by skew x rate`, async () => {
      const limit = 60
      const window = 60 // 1 unit per second: a 7 s spread between the clocks is worth 7 units
      const server = await hammer(algorithm, 'server', limit, window)
      // One timeline: the burst plus what real time refilled.
      expect(server.admitted).toBeLessThanOrEqual(limit + Math.ceil((server.elapsedMs * limit) / (window * 1000)))
      expect(server.admitted).toBeGreaterThanOrEqual(limit)
      const client = await hammer(algorithm, 'client', limit, window)
      // The documented bound: the server that runs ahead sees up to (largest skew - smallest skew) x rate more.
      const spread = Math.max(...SKEWS) - Math.min(...SKEWS)
      const bound = limit + Math.ceil(((spread + client.elapsedMs) * limit) / (window * 1000))
      expect(client.admitted).toBeLessThanOrEqual(bound)
      expect(client.admitted).toBeGreaterThanOrEqual(limit)
    })
  }

  it("fixed window: with time 'server' every app server counts in the same window", async () => {
    // A 1-hour window: 3 servers x 100 checks within it admit exactly the limit on one timeline.
    const start = Date.now()
    const { admitted } = await hammer('fixed_window', 'server', 100, 3_600)
    const sameWindow = Math.floor(start / 3_600_000) === Math.floor(Date.now() / 3_600_000)
    expect(admitted).toBe(sameWindow ? 100 : admitted)
    expect(admitted).toBeLessThanOrEqual(200)
  })
})
