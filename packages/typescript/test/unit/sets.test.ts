// Limit sets (several policies in one decision) and shadow mode, on the in-memory store and a fake clock.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { withHalt } from '../../src/adapters/fetch/index.js'
import {
  type AlgorithmName,
  compilePolicy,
  type Decision,
  type DecisionEvent,
  evaluateSet,
  HaltConfigError,
  InMemoryStore,
  type Policy,
  presets,
  RateLimiter,
  type RateLimiterOptions,
  rateLimitHeaders,
  type Store,
} from '../../src/index.js'
import { asyncStore } from '../support/async-store.js'
import { fakeClock } from '../support/clock.js'

const T0 = 1_700_000_000_000
const SEC: Policy = { name: 'per_second', limit: 3, window: 1, algorithm: 'fixed_window' }
const DAY: Policy = { name: 'per_day', limit: 5, window: '1d', algorithm: 'fixed_window' }

function make(policy: RateLimiterOptions['policy'], extra: Partial<RateLimiterOptions<InMemoryStore>> = {}) {
  const clock = fakeClock(T0)
  const events: DecisionEvent[] = []
  const near: DecisionEvent[] = []
  const limiter = new RateLimiter({
    policy,
    clock,
    store: new InMemoryStore({ sweepInterval: 0 }),
    telemetry: { onCheck: (e) => events.push(e), onNearLimit: (e) => near.push(e) },
    ...extra,
  })
  return { limiter, clock, events, near }
}

describe('limit sets', () => {
  it('admits only when every policy admits, and then consumes from each', () => {
    const { limiter: l, clock } = make([SEC, DAY])
    const first = l.check('u')
    expect(first).toMatchObject({ allowed: true, remaining: 2, policy: 'per_second' })
    expect(first.policies?.map((d) => [d.policy, d.remaining])).toEqual([
      ['per_second', 2],
      ['per_day', 4],
    ])
    l.check('u')
    l.check('u')
    // per_second is spent: the fourth is rejected by it, and per_day gives nothing.
    const fourth = l.check('u')
    expect(fourth).toMatchObject({ allowed: false, policy: 'per_second', reason: 'limit', retryAfter: 1 })
    expect(fourth.policies?.[1]).toMatchObject({ policy: 'per_day', allowed: true, remaining: 2 })
    clock.advance(1000)
    expect(l.check('u')).toMatchObject({ allowed: true, policy: 'per_day', remaining: 1 })
    expect(l.check('u')).toMatchObject({ allowed: true, policy: 'per_day', remaining: 0 })
    // Now per_day rejects: per_second keeps its last unit.
    const d = l.check('u')
    expect(d).toMatchObject({ allowed: false, policy: 'per_day', reason: 'limit' })
    expect(d.retryAfter).toBeGreaterThan(3600)
    expect(d.policies?.[0]).toMatchObject({ policy: 'per_second', allowed: true, remaining: 1 })
    expect(l.peek('u').policies?.map((p) => p.remaining)).toEqual([1, 0])
    expect(l.stats()).toMatchObject({ allowed: 5, blocked: 2, shadowBlocked: 0 })
  })

  it('reports the binding policy: the fewest remaining when admitted, the longest wait when rejected', () => {
    const { limiter: l } = make([
      { name: 'a', limit: 10, window: 10 },
      { name: 'b', limit: 2, window: 100 },
    ])
    expect(l.check('k')).toMatchObject({ allowed: true, policy: 'b', remaining: 1, limit: 2 })
    l.check('k')
    // b is empty (one unit per 50 s); a still has 8.
    expect(l.check('k')).toMatchObject({ allowed: false, policy: 'b', retryAfter: 50 })
    const both = make([
      { name: 'a', limit: 1, window: 10 },
      { name: 'b', limit: 1, window: 100 },
    ]).limiter
    both.check('k')
    expect(both.check('k')).toMatchObject({ allowed: false, policy: 'b', retryAfter: 100 })
  })

  it('a cost goes to every policy; per-policy default costs otherwise', () => {
    const { limiter: l } = make([
      { name: 'a', limit: 10, window: 60, cost: 2 },
      { name: 'b', limit: 10, window: 60 },
    ])
    expect(l.check('k').policies?.map((p) => p.remaining)).toEqual([8, 9])
    expect(l.check('k', { cost: 5 }).policies?.map((p) => p.remaining)).toEqual([3, 4])
    // A cost one policy cannot hold: rejected, nothing taken from the other.
    const d = l.check('k', { cost: 11 })
    expect(d).toMatchObject({ allowed: false, reason: 'cost_exceeds_capacity' })
    expect(l.peek('k').policies?.map((p) => p.remaining)).toEqual([3, 4])
  })

  it('a cooldown started by one policy is kept; the others give nothing', () => {
    const { limiter: l, clock } = make([
      { name: 'burst', limit: 1, window: 1, blockDuration: 10 },
      { name: 'hour', limit: 100, window: '1h' },
    ])
    l.check('k')
    expect(l.check('k')).toMatchObject({ allowed: false, policy: 'burst', reason: 'limit', retryAfter: 10 })
    clock.advance(5000)
    expect(l.check('k')).toMatchObject({ allowed: false, policy: 'burst', reason: 'cooldown', retryAfter: 5 })
    expect(l.peek('k').policies?.[1]?.remaining).toBe(99)
  })

  it('keeps every policy exact on random traffic: each one sees exactly the admitted requests', () => {
    const ALGS: AlgorithmName[] = ['token_bucket', 'gcra', 'fixed_window', 'sliding_window', 'leaky_bucket']
    fc.assert(
      fc.property(
        fc.constantFrom(...ALGS),
        fc.constantFrom(...ALGS),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 2, max: 30 }),
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 700 }), cost: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 120 }),
        (algA, algB, limA, limB, steps) => {
          const a: Policy = { name: 'a', limit: limA, window: 1, algorithm: algA }
          const b: Policy = { name: 'b', limit: limB, window: 20, algorithm: algB }
          const clock = fakeClock(T0)
          const set = new RateLimiter({ policy: [a, b], clock, store: new InMemoryStore({ sweepInterval: 0 }) })
          const aloneA = new RateLimiter({ policy: a, clock, store: new InMemoryStore({ sweepInterval: 0 }) })
          const aloneB = new RateLimiter({ policy: b, clock, store: new InMemoryStore({ sweepInterval: 0 }) })
          for (const s of steps) {
            clock.advance(s.gap)
            const pa = aloneA.peek('k')
            const pb = aloneB.peek('k')
            const d = set.check('k', { cost: s.cost })
            // Each policy reports what it alone, fed only the admitted requests, reports.
            if (d.allowed) {
              expect(aloneA.check('k', { cost: s.cost })).toMatchObject({ allowed: true, remaining: d.policies?.[0]?.remaining })
              expect(aloneB.check('k', { cost: s.cost })).toMatchObject({ allowed: true, remaining: d.policies?.[1]?.remaining })
            } else {
              const ra = d.policies?.[0] as Decision
              const rb = d.policies?.[1] as Decision
              expect(ra.allowed && rb.allowed).toBe(false)
              if (ra.allowed) expect(ra.remaining).toBe(pa.remaining)
              if (rb.allowed) expect(rb.remaining).toBe(pb.remaining)
            }
          }
        },
      ),
      { numRuns: 200 },
    )
  })

  it('decides the same through an asynchronous store', async () => {
    const clock = fakeClock(T0)
    const l = new RateLimiter({ policy: [SEC, DAY], clock, store: asyncStore(new InMemoryStore({ sweepInterval: 0 })) as Store })
    const ds = [] as Decision[]
    for (let i = 0; i < 4; i++) ds.push(await l.check('u'))
    expect(ds.map((d) => d.allowed)).toEqual([true, true, true, false])
    expect((await l.peek('u')).policies?.map((p) => p.remaining)).toEqual([0, 2])
  })

  it('evaluateSet of one enforced policy is evaluate()', () => {
    const rule = compilePolicy({ limit: 2, window: 1 })
    const r1 = evaluateSet([undefined], T0, [1], [rule])
    expect(r1.allowed).toBe(true)
    const r2 = evaluateSet([r1.states[0]], T0, [5], [rule])
    expect(r2).toMatchObject({ allowed: false, outcomes: [{ reason: 'cost_exceeds_capacity' }] })
  })

  it('emits one IETF list item per enforced policy; the other formats describe the binding one', () => {
    const { limiter: l } = make([SEC, DAY, { name: 'trial', limit: 1, window: 60, mode: 'shadow' }])
    const d = l.check('u')
    const h: Record<string, string> = {}
    l.writeHeaders(d, 'ietf', h, (o, n, v) => {
      o[n] = v
    })
    expect(h['RateLimit-Policy']).toBe('"per_second";q=3;w=1, "per_day";q=5;w=86400')
    expect(h.RateLimit).toMatch(/^"per_second";r=2;t=\d+, "per_day";r=4;t=\d+$/)
    expect(rateLimitHeaders(d)).toEqual({ 'RateLimit-Limit': '3', 'RateLimit-Remaining': '2', 'RateLimit-Reset': String(d.resetAt) })
  })

  it('through an adapter: the IETF list on admissions, a 429 from the binding policy, nothing from a shadow limiter', async () => {
    const { limiter: l } = make([SEC, DAY, { name: 'trial', limit: 1, window: 60, mode: 'shadow' }])
    const handler = withHalt(l, () => new Response('ok'), { headers: 'ietf', getIp: () => '203.0.113.5' })
    const first = await handler(new Request('http://h/api'), undefined)
    expect(first.headers.get('ratelimit-policy')).toBe('"per_second";q=3;w=1, "per_day";q=5;w=86400')
    expect(first.headers.get('ratelimit')).toMatch(/^"per_second";r=2;t=1, "per_day";r=4;t=\d+$/)
    await handler(new Request('http://h/api'), undefined)
    await handler(new Request('http://h/api'), undefined)
    const rejected = await handler(new Request('http://h/api'), undefined)
    expect(rejected.status).toBe(429)
    expect(rejected.headers.get('retry-after')).toBe('1')
    const shadow = make([SEC, DAY], { mode: 'shadow' }).limiter
    const quiet = withHalt(shadow, () => new Response('ok'), { getIp: () => '203.0.113.5' })
    for (let i = 0; i < 5; i++) {
      const r = await quiet(new Request('http://h/api'), undefined)
      expect(r.status).toBe(200)
      expect(r.headers.get('ratelimit-limit')).toBeNull()
    }
  })

  it('a policy function may return a set, e.g. per plan', () => {
    const clock = fakeClock(T0)
    const plans: Record<string, Policy[]> = {
      free: [
        { name: 'free_second', limit: 2, window: 1 },
        { name: 'free_day', limit: 3, window: '1d', algorithm: 'fixed_window' },
      ],
      pro: [
        { name: 'pro_second', limit: 10, window: 1 },
        { name: 'pro_day', limit: 1000, window: '1d', algorithm: 'fixed_window', mode: 'shadow' },
      ],
    }
    const l = new RateLimiter({
      policy: (req) => plans[req.header('x-plan') ?? ''],
      defaultPolicy: SEC,
      clock,
      store: new InMemoryStore({ sweepInterval: 0 }),
    })
    const req = (plan: string) => ({ ip: '203.0.113.9', method: 'GET', path: '/x', header: (n: string) => (n === 'x-plan' ? plan : undefined) })
    expect(l.check(req('free'))).toMatchObject({ allowed: true, policy: 'free_second', remaining: 1 })
    expect(l.check(req('free'))).toMatchObject({ allowed: true, policy: 'free_second', remaining: 0 })
    expect(l.check(req('free'))).toMatchObject({ allowed: false, policy: 'free_second' })
    clock.advance(1000)
    expect(l.check(req('free'))).toMatchObject({ allowed: true, policy: 'free_day', remaining: 0 })
    expect(l.check(req('free'))).toMatchObject({ allowed: false, policy: 'free_day' })
    expect(l.check(req('pro')).policies?.map((p) => [p.policy, p.shadow ?? false])).toEqual([
      ['pro_second', false],
      ['pro_day', true],
    ])
    expect(l.debugKey(req('free')).policy).toBe('free_second')
    // An invalid set falls back to the default policy (reported once), never a throw at request time.
    plans.bad = [SEC, { ...SEC }]
    expect(l.check(req('bad'))).toMatchObject({ policy: 'per_second' })
  })

  it('takes a preset pair', () => {
    const l = new RateLimiter({ policy: presets.PER_SECOND_AND_DAY, store: new InMemoryStore({ sweepInterval: 0 }) })
    expect(l.check('k').policies?.map((p) => p.policy)).toEqual(['per_second', 'per_day'])
    expect(l.policies.map((p) => p.name)).toEqual(['per_second', 'per_day'])
    expect(l.policy.name).toBe('per_second')
  })

  it('rejects bad sets when the limiter is created', () => {
    const code = (f: () => unknown) => {
      try {
        f()
      } catch (e) {
        return e instanceof HaltConfigError ? e.code : String(e)
      }
      return 'no error'
    }
    expect(code(() => new RateLimiter({ policy: [] }))).toBe('HALT_INVALID_POLICY_SET')
    expect(code(() => new RateLimiter({ policy: [SEC, { ...DAY, name: 'per_second' }] }))).toBe('HALT_INVALID_POLICY_SET')
    expect(
      code(
        () =>
          new RateLimiter({
            policy: [
              { ...SEC, keyStrategy: 'ip' },
              { ...DAY, keyStrategy: 'user' },
            ],
          }),
      ),
    ).toBe('HALT_INVALID_POLICY_SET')
    expect(code(() => new RateLimiter({ policy: [SEC, { ...DAY, limit: -1 }] }))).toBe('HALT_INVALID_LIMIT')
    expect(code(() => new RateLimiter({ policy: [SEC, DAY], cost: 4 }))).toBe('HALT_COST_EXCEEDS_CAPACITY')
    expect(code(() => new RateLimiter({ policy: [SEC, DAY], defaultPolicy: SEC }))).toBe('HALT_INVALID_OPTIONS')
    expect(code(() => new RateLimiter({ policy: { ...SEC, mode: 'dry' as 'shadow' } }))).toBe('HALT_INVALID_MODE')
    expect(code(() => new RateLimiter({ policy: SEC, mode: 'off' as 'shadow' }))).toBe('HALT_INVALID_MODE')
    expect(code(() => new RateLimiter({ policy: SEC, nearLimit: 0 }))).toBe('HALT_INVALID_NEAR_LIMIT')
    expect(code(() => new RateLimiter({ policy: SEC, nearLimit: 1.5 }))).toBe('HALT_INVALID_NEAR_LIMIT')
    const bare = new InMemoryStore({ sweepInterval: 0 }) as Partial<InMemoryStore>
    const noSets = { synchronous: true, consume: bare.consume?.bind(bare), peek: bare.peek?.bind(bare), reset: () => {}, clear: () => {}, size: () => 0 }
    expect(code(() => new RateLimiter({ policy: [SEC, DAY], store: noSets as unknown as Store }))).toBe('HALT_STORE_NO_SETS')
    expect(code(() => new RateLimiter({ policy: [SEC, DAY] }).check('k', { algorithm: 'gcra' }))).toBe('HALT_INVALID_OPTIONS')
  })
})

describe('shadow mode', () => {
  it('a shadow policy never rejects; it reports what it would do and counts as if enforced', () => {
    const trial: Policy = { name: 'trial', limit: 2, window: 60, mode: 'shadow' }
    const { limiter: l, events } = make([{ name: 'api', limit: 100, window: 60 }, trial])
    const ds = [1, 2, 3, 4].map(() => l.check('k'))
    expect(ds.every((d) => d.allowed && d.policy === 'api')).toBe(true)
    expect(ds.map((d) => d.policies?.[1]?.allowed)).toEqual([true, true, false, false])
    expect(ds[3]?.policies?.[1]).toMatchObject({ shadow: true, reason: 'limit', remaining: 0 })
    const shadow = events.filter((e) => e.shadow === true)
    expect(shadow.map((e) => e.decision.allowed)).toEqual([true, true, false, false])
    expect(events.filter((e) => e.shadow !== true).every((e) => e.decision.allowed && e.decision.policy === 'api')).toBe(true)
    expect(l.stats()).toMatchObject({ allowed: 4, blocked: 0, shadowBlocked: 2 })
  })

  it('a shadow policy consumes only what it would have admitted, and only for served requests', () => {
    const { limiter: l } = make([
      { name: 'api', limit: 3, window: 60, algorithm: 'fixed_window' },
      { name: 'trial', limit: 10, window: 60, algorithm: 'fixed_window', mode: 'shadow' },
    ])
    for (let i = 0; i < 6; i++) l.check('k')
    // Three served requests: the trial policy counted three, not six.
    expect(l.peek('k').policies?.map((p) => p.remaining)).toEqual([0, 7])
  })

  it('a limiter in shadow mode admits everything, sends no headers, and reports each policy', () => {
    const { limiter: l, events } = make([SEC, DAY], { mode: 'shadow' })
    const ds = [1, 2, 3, 4, 5].map(() => l.check('k'))
    expect(ds.every((d) => d.allowed && d.shadow === true && d.retryAfter === 0)).toBe(true)
    expect(ds[3]?.policies?.[0]).toMatchObject({ policy: 'per_second', allowed: false, shadow: true })
    expect(rateLimitHeaders(ds[3] as Decision)).toEqual({})
    expect(rateLimitHeaders(ds[3] as Decision, 'ietf')).toEqual({})
    expect(events.every((e) => e.shadow === true)).toBe(true)
    expect(l.stats()).toMatchObject({ allowed: 5, blocked: 0, shadowBlocked: 2 })
    // Shadow policies are all or nothing among themselves too: per_day counted only the three per_second admitted.
    expect(l.peek('k').policies?.[1]?.remaining).toBe(2)
  })

  it('one shadow policy alone, and a policy switched from shadow to enforce keeps its counters', () => {
    const store = new InMemoryStore({ sweepInterval: 0 })
    const clock = fakeClock(T0)
    const shadow = new RateLimiter({ policy: { ...SEC, mode: 'shadow' }, clock, store })
    for (let i = 0; i < 4; i++) expect(shadow.check('k')).toMatchObject({ allowed: true, shadow: true })
    const enforced = new RateLimiter({ policy: SEC, clock, store })
    expect(enforced.check('k')).toMatchObject({ allowed: false, reason: 'limit' })
  })

  it('HTTP requests under a shadow policy resolved per request', () => {
    const clock = fakeClock(T0)
    const trial: Policy = { name: 'trial', limit: 1, window: 60, mode: 'shadow' }
    const l = new RateLimiter({ policy: () => trial, defaultPolicy: SEC, clock, store: new InMemoryStore({ sweepInterval: 0 }) })
    const req = { ip: '203.0.113.9', method: 'GET', path: '/x', header: () => undefined }
    expect(l.check(req)).toMatchObject({ allowed: true, shadow: true })
    expect(l.check(req)).toMatchObject({ allowed: true, shadow: true, policies: [{ allowed: false, policy: 'trial' }] })
  })
})

describe('near limit', () => {
  it('fires once when an admission crosses 0.8 of the capacity', () => {
    const { limiter: l, near } = make({ name: 'api', limit: 10, window: 60, algorithm: 'fixed_window' })
    for (let i = 0; i < 10; i++) l.check('k')
    expect(near.map((e) => e.decision.remaining)).toEqual([2])
    l.check('k') // rejected: no signal
    expect(near).toHaveLength(1)
  })

  it('takes another fraction, and fires per policy of a set, shadow ones marked', () => {
    const { limiter: l, near } = make(
      [
        { name: 'a', limit: 4, window: 60, algorithm: 'fixed_window' },
        { name: 'b', limit: 2, window: 60, algorithm: 'fixed_window', mode: 'shadow' },
      ],
      { nearLimit: 0.5 },
    )
    l.check('k')
    expect(near.map((e) => [e.decision.policy, e.shadow ?? false])).toEqual([['b', true]])
    l.check('k')
    expect(near.map((e) => [e.decision.policy, e.shadow ?? false])).toEqual([
      ['b', true],
      ['a', false],
    ])
  })

  it('a cost that jumps over the threshold fires too', () => {
    const { limiter: l, near } = make({ name: 'api', limit: 10, window: 60, algorithm: 'fixed_window' })
    l.check('k', { cost: 5 })
    expect(near).toHaveLength(0)
    l.check('k', { cost: 5 })
    expect(near).toHaveLength(1)
  })
})
