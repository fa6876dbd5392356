// QuotaManager on a fake clock: calendar boundaries (months, years, leap years, DST in New York and Berlin),
// check without consuming, refunds, validation, and the store seam.
import { describe, expect, it } from 'vitest'
import { type DecisionEvent, HaltConfigError, InMemoryStore, MetricsTelemetry, type Quota, QuotaManager, QuotaPeriod } from '../../src/index.js'
import { asyncStore } from '../support/async-store.js'
import { fakeClock } from '../support/clock.js'

const at = (...a: [number, number, number?, number?, number?, number?]) => Date.UTC(...a)
const sec = (ms: number) => ms / 1000

function manager(start: number, timeZone?: string) {
  const clock = fakeClock(start)
  const quotas = new QuotaManager(new InMemoryStore({ sweepInterval: 0 }), { clock, ...(timeZone && { timeZone }) })
  return { clock, quotas }
}

describe('QuotaManager: consume, check, refund', () => {
  const monthly: Quota = { name: 'calls', limit: 3, period: QuotaPeriod.MONTHLY }

  it('takes units up to the limit and never beyond', () => {
    const { quotas } = manager(at(2026, 0, 15))
    const r = [1, 2, 3, 4].map(() => quotas.consumeQuota('user:1', monthly))
    expect(r.map((x) => x.allowed)).toEqual([true, true, true, false])
    expect(r[3]?.quota).toEqual({
      name: 'calls',
      limit: 3,
      used: 3,
      remaining: 0,
      resetAt: sec(at(2026, 1, 1)),
      periodStart: sec(at(2026, 0, 1)),
      retryAfter: sec(at(2026, 1, 1) - at(2026, 0, 15)),
    })
  })

  it('checkQuota reads without consuming, for a given cost', () => {
    const { quotas } = manager(at(2026, 0, 15))
    expect(quotas.checkQuota('u', monthly)).toMatchObject({ allowed: true, quota: { used: 0, remaining: 3 } })
    quotas.consumeQuota('u', monthly, 2)
    expect(quotas.checkQuota('u', monthly)).toMatchObject({ allowed: true, quota: { used: 2, remaining: 1 } })
    expect(quotas.checkQuota('u', monthly, 2)).toMatchObject({ allowed: false, quota: { used: 2, remaining: 1 } })
    expect(quotas.checkQuota('u', monthly)).toMatchObject({ quota: { used: 2 } })
  })

  it('a rejected consume takes nothing; a cost above the limit is rejected', () => {
    const { quotas } = manager(at(2026, 0, 15))
    quotas.consumeQuota('u', monthly, 2)
    expect(quotas.consumeQuota('u', monthly, 2).allowed).toBe(false)
    expect(quotas.consumeQuota('u', monthly, 1).allowed).toBe(true)
    expect(quotas.consumeQuota('v', monthly, 4)).toMatchObject({ allowed: false, quota: { used: 0, remaining: 3 } })
  })

  it('refundQuota gives units back, never below zero', () => {
    const { quotas } = manager(at(2026, 0, 15))
    quotas.consumeQuota('u', monthly, 3)
    expect(quotas.refundQuota('u', monthly)).toMatchObject({ allowed: true, quota: { used: 2, remaining: 1 } })
    expect(quotas.refundQuota('u', monthly, 10)).toMatchObject({ quota: { used: 0, remaining: 3 } })
    expect(quotas.consumeQuota('u', monthly, 3).allowed).toBe(true)
  })

  it('resetQuota forgets the usage; identities and quota names are apart', () => {
    const { quotas } = manager(at(2026, 0, 15))
    quotas.consumeQuota('a', monthly, 3)
    expect(quotas.checkQuota('b', monthly).quota.used).toBe(0)
    expect(quotas.checkQuota('a', { ...monthly, name: 'other' }).quota.used).toBe(0)
    quotas.resetQuota('a', monthly)
    expect(quotas.checkQuota('a', monthly).quota.used).toBe(0)
  })

  it('answers with promises over an asynchronous store', async () => {
    const clock = fakeClock(at(2026, 0, 15))
    const quotas = new QuotaManager(asyncStore(new InMemoryStore({ sweepInterval: 0 })), { clock })
    const p = quotas.consumeQuota('u', monthly)
    expect(p).toBeInstanceOf(Promise)
    expect((await p).quota.used).toBe(1)
    expect((await quotas.refundQuota('u', monthly)).quota.used).toBe(0)
  })
})

describe('QuotaManager: calendar boundaries on a fake clock', () => {
  it('a monthly quota resets on the 1st at 00:00 UTC, not a second earlier', () => {
    const q: Quota = { name: 'm', limit: 1, period: 'monthly' }
    const { clock, quotas } = manager(at(2026, 0, 31, 23, 59, 59))
    expect(quotas.consumeQuota('u', q).allowed).toBe(true)
    clock.set(at(2026, 1, 1) - 1)
    expect(quotas.consumeQuota('u', q)).toMatchObject({ allowed: false, quota: { retryAfter: 1 } })
    clock.set(at(2026, 1, 1))
    expect(quotas.consumeQuota('u', q)).toMatchObject({ allowed: true, quota: { resetAt: sec(at(2026, 2, 1)) } })
  })

  it('February of a leap year has 29 days; of other years 28', () => {
    const q: Quota = { name: 'm', limit: 1, period: 'monthly' }
    const { clock, quotas } = manager(at(2028, 1, 29, 12))
    expect(quotas.consumeQuota('u', q).quota).toMatchObject({ periodStart: sec(at(2028, 1, 1)), resetAt: sec(at(2028, 2, 1)) })
    clock.set(at(2027, 1, 28, 12))
    expect(quotas.period(q)).toEqual({ startMs: at(2027, 1, 1), endMs: at(2027, 2, 1) })
  })

  it('a yearly quota resets on January 1st; 2028 has 366 days', () => {
    const q: Quota = { name: 'y', limit: 2, period: 'yearly' }
    const { clock, quotas } = manager(at(2028, 11, 31, 23, 59, 59))
    quotas.consumeQuota('u', q, 2)
    expect(quotas.consumeQuota('u', q).allowed).toBe(false)
    expect((quotas.period(q).endMs - quotas.period(q).startMs) / 86_400_000).toBe(366)
    clock.set(at(2029, 0, 1))
    expect(quotas.consumeQuota('u', q).quota).toMatchObject({ used: 1, periodStart: sec(at(2029, 0, 1)) })
  })

  it('in America/New_York a month resets at local midnight, through the DST change', () => {
    const q: Quota = { name: 'ny', limit: 1, period: 'monthly', timeZone: 'America/New_York' }
    const { clock, quotas } = manager(at(2026, 2, 15))
    // March 1st 00:00 EST = 05:00 UTC; April 1st 00:00 EDT = 04:00 UTC.
    expect(quotas.period(q)).toEqual({ startMs: at(2026, 2, 1, 5), endMs: at(2026, 3, 1, 4) })
    expect(quotas.consumeQuota('u', q).allowed).toBe(true)
    clock.set(at(2026, 3, 1, 3, 59, 59)) // still March 31st in New York
    expect(quotas.consumeQuota('u', q).allowed).toBe(false)
    clock.set(at(2026, 3, 1, 4))
    expect(quotas.consumeQuota('u', q).allowed).toBe(true)
  })

  it('daily quotas in Europe/Berlin last 23 hours on the spring change and 25 on the autumn one', () => {
    const q: Quota = { name: 'd', limit: 1, period: 'daily' }
    const { clock, quotas } = manager(at(2026, 2, 29, 12), 'Europe/Berlin')
    const hours = () => (quotas.period(q).endMs - quotas.period(q).startMs) / 3_600_000
    expect(hours()).toBe(23)
    expect(quotas.period(q).startMs).toBe(at(2026, 2, 28, 23))
    clock.set(at(2026, 9, 25, 12))
    expect(hours()).toBe(25)
    clock.set(at(2026, 9, 26, 12))
    expect(hours()).toBe(24)
  })

  it('the time zone option of the manager is the default; a quota may set its own', () => {
    const { quotas } = manager(at(2026, 0, 1, 3), 'America/New_York') // Dec 31st, 22:00 in New York
    expect(quotas.period({ name: 'a', limit: 1, period: 'yearly' }).startMs).toBe(at(2025, 0, 1, 5))
    expect(quotas.period({ name: 'b', limit: 1, period: 'yearly', timeZone: 'UTC' }).startMs).toBe(at(2026, 0, 1))
  })

  it('hourly and weekly periods', () => {
    const { quotas } = manager(at(2026, 11, 6, 23, 30)) // a Sunday
    expect(quotas.period({ name: 'h', limit: 1, period: 'hourly' })).toEqual({ startMs: at(2026, 11, 6, 23), endMs: at(2026, 11, 7) })
    expect(quotas.period({ name: 'w', limit: 1, period: 'weekly' })).toEqual({ startMs: at(2026, 10, 30), endMs: at(2026, 11, 7) })
  })

  it('usage of one time zone is not another`s: the namespace names period and zone', () => {
    const { quotas } = manager(at(2026, 0, 15))
    expect(quotas.namespace({ name: 'calls', limit: 1, period: 'monthly', timeZone: 'Europe/Berlin' })).toBe('quota:calls:monthly:Europe/Berlin:q')
  })
})

describe('QuotaManager: configuration errors', () => {
  const { quotas } = manager(at(2026, 0, 15))
  const code = (f: () => unknown) => {
    try {
      f()
    } catch (e) {
      expect(e).toBeInstanceOf(HaltConfigError)
      return (e as HaltConfigError).code
    }
    return 'no error'
  }
  it('rejects bad quotas, costs, time zones and identifiers with stable codes', () => {
    expect(code(() => quotas.define({ name: '', limit: 1, period: 'monthly' }))).toBe('HALT_INVALID_QUOTA')
    expect(code(() => quotas.define({ name: 'x', limit: 0, period: 'monthly' }))).toBe('HALT_INVALID_QUOTA')
    expect(code(() => quotas.define({ name: 'x', limit: 1, period: 'fortnightly' as 'monthly' }))).toBe('HALT_INVALID_QUOTA')
    expect(code(() => quotas.define({ name: 'x', limit: 1, period: 'monthly', timeZone: 'Mars/Olympus' }))).toBe('HALT_INVALID_TIME_ZONE')
    expect(code(() => new QuotaManager(new InMemoryStore(), { timeZone: 'Nowhere' }))).toBe('HALT_INVALID_TIME_ZONE')
    expect(code(() => quotas.consumeQuota('u', { name: 'x', limit: 1, period: 'monthly' }, -1))).toBe('HALT_INVALID_COST')
    expect(code(() => quotas.consumeQuota(42 as unknown as string, { name: 'x', limit: 1, period: 'monthly' }))).toBe('HALT_INVALID_IDENTIFIER')
    expect(code(() => new QuotaManager({} as InMemoryStore))).toBe('HALT_INVALID_STORE')
  })
})

describe('QuotaManager telemetry', () => {
  const monthly: Quota = { name: 'calls', limit: 2, period: QuotaPeriod.MONTHLY }

  it('reports every consumeQuota: allowed, then blocked with reason quota, under the quota name; a throwing hook changes nothing', async () => {
    const metrics = new MetricsTelemetry()
    const seen: DecisionEvent[] = []
    const quotas = new QuotaManager(new InMemoryStore({ sweepInterval: 0 }), {
      clock: fakeClock(at(2026, 0, 15)),
      telemetry: [metrics, { onCheck: (e) => void seen.push(e) }, { onBlocked: () => Promise.reject(new Error('exporter down')) }],
    })
    expect([1, 2, 3].map(() => quotas.consumeQuota('apikey:abc', monthly).allowed)).toEqual([true, true, false])
    expect(seen.map((e) => [e.key, e.decision.policy, e.decision.allowed, e.decision.reason, e.decision.remaining])).toEqual([
      ['apikey:abc', 'calls', true, undefined, 1],
      ['apikey:abc', 'calls', true, undefined, 0],
      ['apikey:abc', 'calls', false, 'quota', 0],
    ])
    expect(seen.every((e) => typeof e.durationMs === 'number')).toBe(true)
    const m = metrics.snapshot()
    expect([m.allowed, m.blocked, m.byReason.quota]).toEqual([2, 1, 1])
    // Over an asynchronous store too; checkQuota and refundQuota are reads and corrections, not decisions.
    const later: DecisionEvent[] = []
    const remote = new QuotaManager(asyncStore(), { clock: fakeClock(at(2026, 0, 15)), telemetry: { onCheck: (e) => void later.push(e) } })
    await remote.consumeQuota('u', monthly)
    await remote.checkQuota('u', monthly)
    await remote.refundQuota('u', monthly)
    expect(later).toHaveLength(1)
    expect(() => new QuotaManager(undefined, { telemetry: {} as never })).toThrow(HaltConfigError)
  })
})
