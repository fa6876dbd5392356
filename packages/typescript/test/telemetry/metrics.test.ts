// MetricsTelemetry: counters by outcome, reason, policy and shadow mode; the latency histogram and its quantiles; reset.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type Decision, type DecisionEvent, HaltConfigError, InMemoryStore, MetricsTelemetry, type Outcome, RateLimiter, type Store } from '../../src/index.js'
import { view } from '../http/support.js'
import { fakeClock } from '../support/clock.js'

const pass: Decision = { allowed: true, limit: 10, remaining: 5, resetAt: 0, retryAfter: 0, policy: 'p', delay: 0 }
const event = (over: Partial<DecisionEvent> = {}, d: Partial<Decision> = {}): DecisionEvent => ({ key: 'k', cost: 1, decision: { ...pass, ...d }, ...over })

afterEach(() => {
  vi.useRealTimers()
})

describe('MetricsTelemetry', () => {
  it('counts a limiter`s decisions by outcome, reason and policy', () => {
    const metrics = new MetricsTelemetry()
    const clock = fakeClock()
    const api = new RateLimiter({ store: new InMemoryStore({ sweepInterval: 0 }), clock, policy: { name: 'api', limit: 2, window: 60 }, telemetry: metrics })
    const login = new RateLimiter({
      store: new InMemoryStore({ sweepInterval: 0 }),
      clock,
      policy: { name: 'login', limit: 1, window: 60, blockDuration: 60 },
      telemetry: metrics,
    })
    for (let i = 0; i < 5; i++) api.check('k') // 2 pass, 3 limit
    for (let i = 0; i < 3; i++) login.check('k') // 1 pass, limit, cooldown
    api.check(view({ path: '/health' }))
    const s = metrics.snapshot()
    expect(s).toMatchObject({ checks: 9, allowed: 3, blocked: 5, exempt: 1, shadow: { allowed: 0, blocked: 0 }, byReason: { limit: 4, cooldown: 1 } })
    expect(s.byPolicy.api).toMatchObject({ checks: 6, allowed: 2, blocked: 3, exempt: 1, byReason: { limit: 3 } })
    expect(s.byPolicy.login).toMatchObject({ checks: 3, allowed: 1, blocked: 2, byReason: { limit: 1, cooldown: 1 } })
    expect(s.latency.count).toBe(8) // the exempt request reached no store: not timed
    expect(api.stats()).toMatchObject({ allowed: 2, blocked: 3 }) // agrees with the limiter's own counts
  })

  it('keeps shadow decisions apart: they never turned a request away', () => {
    const metrics = new MetricsTelemetry()
    metrics.onCheck(event({ shadow: true }, { allowed: false, reason: 'limit' }))
    metrics.onCheck(event({ shadow: true }))
    metrics.onCheck(event({}, { allowed: false, reason: 'limit' }))
    metrics.onNearLimit(event({ shadow: true }))
    metrics.onNearLimit(event())
    const s = metrics.snapshot()
    expect(s).toMatchObject({ checks: 3, allowed: 0, blocked: 1, shadow: { allowed: 1, blocked: 1 }, nearLimit: 2, byReason: { limit: 2 } })
    expect(s.byPolicy.p).toMatchObject({ nearLimit: 2 })
  })

  it('counts store errors per policy', async () => {
    const metrics = new MetricsTelemetry()
    const inner = new InMemoryStore({ sweepInterval: 0 })
    const down: Store = {
      synchronous: false,
      consume: async () => {
        throw new Error('down')
      },
      peek: async (...a) => ({ ...inner.peek(...a) }) as Outcome,
      reset: async () => {},
      clear: async () => {},
    }
    const limiter = new RateLimiter({ store: down, clock: fakeClock(), policy: { name: 'api', limit: 5, window: 60 }, telemetry: metrics })
    await limiter.check('k')
    expect(metrics.snapshot()).toMatchObject({ storeErrors: 1, allowed: 1, byPolicy: { api: { storeErrors: 1 } } })
  })

  it('latency histogram: cumulative buckets, sum, max and quantiles (fake timers: the store takes 3 ms, then 40 ms)', async () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const inner = new InMemoryStore({ sweepInterval: 0 })
    let takes = 3
    const slow: Store = {
      synchronous: false,
      consume: async (...a) => {
        vi.advanceTimersByTime(takes)
        return { ...inner.consume(...a) } as Outcome
      },
      peek: async (...a) => ({ ...inner.peek(...a) }) as Outcome,
      reset: async () => {},
      clear: async () => {},
    }
    const metrics = new MetricsTelemetry({ buckets: [1, 5, 10, 50] })
    const limiter = new RateLimiter({ store: slow, clock: fakeClock(), policy: { limit: 100, window: 60 }, telemetry: metrics })
    for (let i = 0; i < 9; i++) await limiter.check('k')
    takes = 40
    await limiter.check('k')
    const { latency } = metrics.snapshot()
    expect(latency).toEqual({
      count: 10,
      sumMs: 67,
      maxMs: 40,
      buckets: [
        { leMs: 1, count: 0 },
        { leMs: 5, count: 9 },
        { leMs: 10, count: 9 },
        { leMs: 50, count: 10 },
        { leMs: Number.POSITIVE_INFINITY, count: 10 },
      ],
    })
    expect(metrics.quantile(0.5)).toBe(5)
    expect(metrics.quantile(0.9)).toBe(5)
    expect(metrics.quantile(0.99)).toBe(40) // the bucket bound (50) capped by the largest observation
    metrics.onCheck(event({ durationMs: 900 }))
    expect(metrics.quantile(1)).toBe(900) // past the last bound: the largest observation
  })

  it('reset() zeroes everything; policy names are data, even __proto__', () => {
    const metrics = new MetricsTelemetry()
    metrics.onCheck(event({ durationMs: 0.2 }, { policy: '__proto__' }))
    expect(metrics.snapshot().byPolicy.__proto__).toMatchObject({ checks: 1, allowed: 1 })
    metrics.reset()
    const s = metrics.snapshot()
    expect(s).toMatchObject({ checks: 0, latency: { count: 0, sumMs: 0, maxMs: 0 } })
    expect(Object.keys(s.byPolicy)).toEqual([])
    expect(metrics.quantile(0.5)).toBe(0)
  })

  it('rejects bucket bounds that are not increasing positive numbers', () => {
    for (const buckets of [[], [0, 1], [5, 1], [1, Number.NaN], 'x']) {
      expect(() => new MetricsTelemetry({ buckets: buckets as never })).toThrow(HaltConfigError)
    }
  })
})
