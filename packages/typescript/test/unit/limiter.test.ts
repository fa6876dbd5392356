// RateLimiter public API: check, allow, peek, reset, clear, stats, wrap, overrides, validation, presets.
import { describe, expect, it, vi } from 'vitest'
import { Algorithm, getPlanPolicy, HaltConfigError, InMemoryStore, KeyStrategy, type Policy, presets, RateLimitExceeded, RateLimiter } from '../../src/index.js'
import { asyncStore } from '../support/async-store.js'
import { fakeClock } from '../support/clock.js'

const T0 = 1_700_000_000_000

function limiter(policy: Policy, clock = fakeClock(T0)) {
  return { clock, limiter: new RateLimiter({ policy, clock, store: new InMemoryStore({ sweepInterval: 0 }) }) }
}

describe('check', () => {
  it('admits up to the limit, then rejects with retryAfter and resetAt in seconds', () => {
    const { limiter: l } = limiter({ name: 'api', limit: 3, window: 60 })
    const ds = [1, 2, 3, 4].map(() => l.check('user:1'))
    expect(ds.map((d) => d.allowed)).toEqual([true, true, true, false])
    expect(ds.map((d) => d.remaining)).toEqual([2, 1, 0, 0])
    const last = ds[3]!
    expect(last).toMatchObject({ allowed: false, limit: 3, policy: 'api', reason: 'limit', retryAfter: 20, delay: 0 })
    expect(last.resetAt).toBe(T0 / 1000 + 60)
    expect(ds[0]!.retryAfter).toBe(0)
    expect(ds[0]!.reason).toBeUndefined()
  })

  it('is synchronous on the in-memory store', () => {
    const { limiter: l } = limiter({ limit: 1, window: 1 })
    const d = l.check('k')
    expect(d).not.toBeInstanceOf(Promise)
    expect(d.allowed).toBe(true)
  })

  it('refills continuously with the injected clock', () => {
    const { limiter: l, clock } = limiter({ limit: 2, window: 1 })
    expect(l.allow('k')).toBe(true)
    expect(l.allow('k')).toBe(true)
    expect(l.allow('k')).toBe(false)
    clock.advance(499)
    expect(l.allow('k')).toBe(false)
    clock.advance(1)
    expect(l.allow('k')).toBe(true)
  })

  it('keeps keys apart', () => {
    const { limiter: l } = limiter({ limit: 1, window: 60 })
    expect(l.allow('a')).toBe(true)
    expect(l.allow('b')).toBe(true)
    expect(l.allow('a')).toBe(false)
  })

  it('takes a per-request cost, and rejects a cost above capacity with a clear reason', () => {
    const { limiter: l } = limiter({ limit: 10, window: 60 })
    expect(l.check('k', { cost: 4 })).toMatchObject({ allowed: true, remaining: 6 })
    const big = l.check('k', { cost: 11 })
    expect(big).toMatchObject({ allowed: false, reason: 'cost_exceeds_capacity', remaining: 6 })
    expect(l.check('k', { cost: 6 })).toMatchObject({ allowed: true, remaining: 0 })
  })

  it('rejects an invalid per-request cost with an error that says what is wrong', () => {
    const { limiter: l } = limiter({ limit: 10, window: 60 })
    for (const cost of [Number.NaN, -1, Number.POSITIVE_INFINITY, '3' as unknown as number]) {
      expect(() => l.check('k', { cost })).toThrow(/cost must be a finite number >= 0/)
    }
  })

  it('overrides the algorithm per request, with state kept apart', () => {
    const { limiter: l } = limiter({ name: 'p', limit: 2, window: 60 })
    expect(l.allow('k')).toBe(true)
    expect(l.allow('k')).toBe(true)
    expect(l.allow('k')).toBe(false)
    expect(l.check('k', { algorithm: Algorithm.FIXED_WINDOW }).allowed).toBe(true)
    expect(l.check('k', { algorithm: Algorithm.FIXED_WINDOW }).allowed).toBe(true)
    expect(l.check('k', { algorithm: Algorithm.FIXED_WINDOW }).allowed).toBe(false)
    expect(() => l.check('k', { algorithm: 'nope' as never })).toThrow(HaltConfigError)
  })

  it('starts a cooldown after the limit is exceeded when blockDuration is set', () => {
    const { limiter: l, clock } = limiter({ limit: 1, window: 1, blockDuration: '5m' })
    expect(l.allow('k')).toBe(true)
    const d = l.check('k')
    expect(d).toMatchObject({ allowed: false, reason: 'limit', retryAfter: 300 })
    clock.advance(10_000)
    expect(l.check('k')).toMatchObject({ allowed: false, reason: 'cooldown', retryAfter: 290 })
    clock.advance(290_000)
    expect(l.allow('k')).toBe(true)
  })

  it('returns a shaping delay from the leaky bucket', () => {
    const { limiter: l } = limiter({ limit: 10, window: 1, burst: 5, algorithm: 'leaky_bucket', leakyMode: 'shaping' })
    const delays = [1, 2, 3, 4, 5].map(() => l.check('k').delay)
    expect(delays).toEqual([0, 0.1, 0.2, 0.3, 0.4])
    expect(l.check('k')).toMatchObject({ allowed: false, reason: 'limit' })
  })
})

describe('peek, reset, clear, stats', () => {
  it('peek reads without consuming', () => {
    const { limiter: l } = limiter({ limit: 2, window: 60 })
    expect(l.peek('k')).toMatchObject({ allowed: true, remaining: 2 })
    l.check('k')
    expect(l.peek('k')).toMatchObject({ allowed: true, remaining: 1 })
    expect(l.peek('k')).toMatchObject({ remaining: 1 })
    expect(l.stats().totalChecks).toBe(1)
  })

  it('reset forgets one key, clear forgets all, stats count', () => {
    const { limiter: l } = limiter({ limit: 1, window: 60 })
    l.check('a')
    l.check('a')
    l.check('b')
    expect(l.stats()).toEqual({ allowed: 2, blocked: 1, totalChecks: 3, activeKeys: 2, shadowBlocked: 0 })
    l.reset('a')
    expect(l.allow('a')).toBe(true)
    expect(l.allow('b')).toBe(false)
    l.clear()
    expect(l.stats()).toEqual({ allowed: 0, blocked: 0, totalChecks: 0, activeKeys: 0, shadowBlocked: 0 })
    expect(l.allow('b')).toBe(true)
  })

  it('two policies on one store never share state', () => {
    const store = new InMemoryStore({ sweepInterval: 0 })
    const a = new RateLimiter({ store, policy: { name: 'a', limit: 1, window: 60 } })
    const b = new RateLimiter({ store, policy: { name: 'b', limit: 1, window: 60 } })
    expect(a.allow('k')).toBe(true)
    expect(b.allow('k')).toBe(true)
    a.clear()
    expect(b.allow('k')).toBe(false)
    expect(a.allow('k')).toBe(true)
  })
})

describe('wrap', () => {
  it('calls through under the limit and throws RateLimitExceeded with retryAfter over it', () => {
    const { limiter: l } = limiter({ limit: 2, window: 10 })
    const fn = vi.fn((to: string) => `sent to ${to}`)
    const send = l.wrap(fn, (to) => `email:${to}`)
    expect(send('a')).toBe('sent to a')
    expect(send('a')).toBe('sent to a')
    let err: unknown
    try {
      send('a')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(RateLimitExceeded)
    expect((err as RateLimitExceeded).retryAfter).toBe(5)
    expect(fn).toHaveBeenCalledTimes(2)
    expect(send('b')).toBe('sent to b')
  })

  it('returns a promise over an asynchronous store', async () => {
    const l = new RateLimiter({ store: asyncStore(), policy: { limit: 1, window: 10 } })
    const job = l.wrap(async (x: number) => x * 2, 'job')
    await expect(job(2)).resolves.toBe(4)
    await expect(job(2)).rejects.toBeInstanceOf(RateLimitExceeded)
    await expect(l.check('other')).resolves.toMatchObject({ allowed: true })
    await expect(l.stats()).resolves.toMatchObject({ allowed: 2, blocked: 1, activeKeys: 2, shadowBlocked: 0 })
  })
})

describe('configuration errors say what is wrong and how to fix it', () => {
  const cases: [string, Policy, string, RegExp][] = [
    ['negative limit', { limit: -1, window: 60 }, 'HALT_INVALID_LIMIT', /limit must be a positive finite number.*got -1.*Fix/],
    ['NaN limit', { limit: Number.NaN, window: 60 }, 'HALT_INVALID_LIMIT', /got NaN/],
    ['zero window', { limit: 10, window: 0 }, 'HALT_INVALID_WINDOW', /window must be at least 1 ms/],
    ['bad window string', { limit: 10, window: '1 fortnight' as never }, 'HALT_INVALID_DURATION', /'1 fortnight'/],
    ['burst below cost', { limit: 10, window: 60, burst: 2, cost: 5 }, 'HALT_COST_EXCEEDS_CAPACITY', /raise burst to at least 5/],
    ['unknown algorithm', { limit: 10, window: 60, algorithm: 'token-bucket' as never }, 'HALT_UNKNOWN_ALGORITHM', /token_bucket, fixed_window/],
    ['bad precision', { limit: 10, window: 60, algorithm: 'sliding_window', precision: 0 }, 'HALT_INVALID_PRECISION', /precision must be/],
    ['unknown key strategy', { limit: 10, window: 60, keyStrategy: 'cookie' as never }, 'HALT_UNKNOWN_KEY_STRATEGY', /ip, user, api_key/],
    ['negative cost', { limit: 10, window: 60, cost: -1 }, 'HALT_INVALID_COST', /cost must be a finite number >= 0/],
  ]
  for (const [what, policy, code, message] of cases) {
    it(what, () => {
      let err: HaltConfigError | undefined
      try {
        new RateLimiter({ policy })
      } catch (e) {
        err = e as HaltConfigError
      }
      expect(err).toBeInstanceOf(HaltConfigError)
      expect(err?.code).toBe(code)
      expect(err?.message).toMatch(message)
      expect(err?.docs).toContain(code.toLowerCase())
    })
  }

  it('requires a policy', () => {
    expect(() => new RateLimiter({} as never)).toThrow(/policy is required/)
  })

  it('accepts duration strings', () => {
    const { limiter: l } = limiter({ limit: 1, window: '1m' })
    expect(l.rule.windowMs).toBe(60_000)
  })
})

describe('constants and presets', () => {
  it('exports Algorithm and KeyStrategy constants', () => {
    expect(Algorithm).toEqual({
      TOKEN_BUCKET: 'token_bucket',
      FIXED_WINDOW: 'fixed_window',
      SLIDING_WINDOW: 'sliding_window',
      LEAKY_BUCKET: 'leaky_bucket',
      GCRA: 'gcra',
    })
    expect(KeyStrategy).toEqual({ IP: 'ip', USER: 'user', API_KEY: 'api_key', COMPOSITE: 'composite', CUSTOM: 'custom' })
  })

  it('has the documented presets, every one valid', () => {
    expect(presets.PUBLIC_API).toMatchObject({ limit: 100, window: 60, burst: 120 })
    expect(presets.AUTH_ENDPOINTS).toMatchObject({ limit: 5, window: 60, burst: 10, blockDuration: 300 })
    expect(presets.EXPENSIVE_OPS).toMatchObject({ limit: 10, window: 3600, burst: 15, cost: 10 })
    expect(presets.STRICT_API).toMatchObject({ limit: 20, window: 60, burst: 25 })
    expect(presets.GENEROUS_API).toMatchObject({ limit: 1000, window: 60, burst: 1200 })
    const plans = [presets.PLAN_FREE, presets.PLAN_STARTER, presets.PLAN_PRO, presets.PLAN_BUSINESS, presets.PLAN_ENTERPRISE]
    expect(plans.map((p) => [p.limit, p.window])).toEqual([
      [100, 3600],
      [500, 3600],
      [2000, 3600],
      [5000, 3600],
      [20000, 3600],
    ])
    for (const p of Object.values(presets)) if (typeof p === 'object') expect(() => new RateLimiter({ policy: p })).not.toThrow()
  })

  it('AUTH_ENDPOINTS cools down for 5 minutes after it is exceeded', () => {
    const { limiter: l, clock } = limiter(presets.AUTH_ENDPOINTS)
    for (let i = 0; i < 10; i++) expect(l.allow('ip:1')).toBe(true)
    expect(l.check('ip:1')).toMatchObject({ allowed: false, retryAfter: 300 })
    clock.advance(60_000)
    expect(l.check('ip:1')).toMatchObject({ allowed: false, reason: 'cooldown', retryAfter: 240 })
  })

  it('EXPENSIVE_OPS charges 10 per request', () => {
    const { limiter: l } = limiter(presets.EXPENSIVE_OPS)
    expect(l.check('u')).toMatchObject({ allowed: true, remaining: 5 })
    expect(l.check('u')).toMatchObject({ allowed: false, reason: 'limit' })
  })

  it('getPlanPolicy is case-insensitive and rejects unknown plans clearly', () => {
    expect(getPlanPolicy('PRO')).toBe(presets.PLAN_PRO)
    expect(getPlanPolicy(' enterprise ')).toBe(presets.PLAN_ENTERPRISE)
    expect(() => getPlanPolicy('platinum')).toThrow(/unknown plan "platinum".*free, starter, pro, business, enterprise/)
  })
})
