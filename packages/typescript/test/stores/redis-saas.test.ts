// Quotas and penalties on a real Redis, beyond the conformance suite: the blocked-key cache and quota refunds,
// and the key layout of spec/KEYS.md for quota and penalty state.
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PenaltyManager, QuotaManager } from '../../src/index.js'
import { RedisStore } from '../../src/stores/redis/index.js'
import { type Connected, connect } from './redis-clients.js'
import { server } from './servers.js'

const REDIS = server('HALT_TEST_REDIS_URL')
const T0 = Date.UTC(2026, 0, 15)

describe.skipIf(REDIS === undefined)('quotas and penalties on Redis', () => {
  let conn: Connected
  beforeAll(async () => {
    conn = await connect('ioredis', REDIS as string)
  })
  afterAll(() => conn?.close())

  it('with the blocked-key cache, a rejected quota is answered in process and a refund from this store drops it', async () => {
    const store = new RedisStore({ client: conn.client, blockedKeyCache: true })
    const quotas = new QuotaManager(store, { clock: () => T0 })
    const q = { name: `cache-${randomUUID().slice(0, 8)}`, limit: 1, period: 'monthly' as const }
    expect((await quotas.consumeQuota('u', q)).allowed).toBe(true)
    expect((await quotas.consumeQuota('u', q)).allowed).toBe(false)
    const calls = store.counters.calls
    expect((await quotas.consumeQuota('u', q)).allowed).toBe(false)
    expect(store.counters.calls).toBe(calls) // answered by the cache
    expect((await quotas.refundQuota('u', q)).quota.used).toBe(0)
    expect((await quotas.consumeQuota('u', q)).allowed).toBe(true)
  })

  it('keys follow spec/KEYS.md and expire with the period or when the identity is forgiven', async () => {
    const store = new RedisStore({ client: conn.client, prefix: `t${randomUUID().slice(0, 6)}:` })
    const now = Date.now()
    const quotas = new QuotaManager(store, { clock: () => now })
    const q = { name: 'api_calls', limit: 5, period: 'daily' as const, timeZone: 'Europe/Berlin' }
    await quotas.consumeQuota('user:42', q)
    const qKey = `${store.prefix}quota:api_calls:daily:Europe/Berlin:q:{user:42}`
    const ttl = await (conn.client as Redis).pttl(qKey)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(quotas.period(q).endMs - now)
    const pm = new PenaltyManager({ store, clock: () => now, config: { threshold: 10, duration: 60, decayRate: 3600 } })
    await pm.recordViolation('ip:203.0.113.7', 2)
    const pKey = `${store.prefix}penalty:pen:{ip:203.0.113.7}`
    expect(await (conn.client as Redis).pttl(pKey)).toBeGreaterThan(1000) // 2 points at 1 per second: forgiven in 2 s
    expect(await (conn.client as Redis).pttl(pKey)).toBeLessThanOrEqual(2000)
  })
})
