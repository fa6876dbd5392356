// PenaltyManager on a fake clock (continuous decay, progressive and capped penalties, forgiveness) and a RateLimiter
// given `penalties` (violations recorded by itself, the limit scaled while penalised, reason 'penalty').
import { describe, expect, it } from 'vitest'
import { type Decision, HaltConfigError, InMemoryStore, PenaltyManager, RateLimiter } from '../../src/index.js'
import { asyncStore } from '../support/async-store.js'
import { fakeClock } from '../support/clock.js'

const T0 = 1_700_000_000_000
const HOUR = 3_600_000

function penalties(config: Partial<ConstructorParameters<typeof PenaltyManager>[0]['config']> = {}) {
  const clock = fakeClock(T0)
  const pm = new PenaltyManager({ store: new InMemoryStore({ sweepInterval: 0 }), clock, config: { threshold: 10, duration: 60, decayRate: 5, ...config } })
  return { clock, pm }
}

describe('PenaltyManager', () => {
  it('crossing the threshold starts a penalty of duration seconds', () => {
    const { clock, pm } = penalties()
    for (let i = 0; i < 9; i++) expect(pm.recordViolation('ip:1').isActive()).toBe(false)
    const p = pm.recordViolation('ip:1')
    expect(p).toMatchObject({ abuseScore: 10, offences: 1, penaltyUntilMs: T0 + 60_000, penaltyUntil: (T0 + 60_000) / 1000 })
    expect(p.isActive()).toBe(true)
    clock.advance(59_999)
    expect(p.isActive()).toBe(true)
    expect(pm.getPenalty('ip:1').isActive()).toBe(true)
    clock.advance(1)
    expect(p.isActive()).toBe(false)
    expect(pm.getPenalty('ip:1').isActive()).toBe(false)
  })

  it('the score decays continuously at decayRate points per hour', () => {
    const { clock, pm } = penalties({ decayRate: 6 })
    pm.recordViolation('k', 5)
    clock.advance(HOUR / 2)
    expect(pm.getPenalty('k').abuseScore).toBeCloseTo(2, 12)
    clock.advance(HOUR / 6) // 10 minutes: another point
    expect(pm.getPenalty('k').abuseScore).toBeCloseTo(1, 12)
    clock.advance(HOUR)
    expect(pm.getPenalty('k').abuseScore).toBe(0)
  })

  it('severity weighs a violation', () => {
    const { pm } = penalties()
    expect(pm.recordViolation('k', 4).abuseScore).toBe(4)
    expect(pm.recordViolation('k', 6).isActive()).toBe(true)
  })

  it('repeat offences double the penalty, up to maxDuration', () => {
    const { clock, pm } = penalties({ threshold: 2, duration: 60, maxDuration: 200, decayRate: 1 })
    const lengths: number[] = []
    pm.recordViolation('k', 2)
    for (let i = 0; i < 4; i++) {
      const p = pm.getPenalty('k')
      lengths.push((p.penaltyUntilMs - clock.now) / 1000)
      clock.set(p.penaltyUntilMs)
      pm.recordViolation('k')
    }
    expect(lengths).toEqual([60, 120, 200, 200])
    expect(pm.getPenalty('k').offences).toBe(5)
  })

  it('violations during a penalty do not lengthen it', () => {
    const { clock, pm } = penalties()
    pm.recordViolation('k', 10)
    clock.advance(10_000)
    const p = pm.recordViolation('k', 10)
    expect(p.penaltyUntilMs).toBe(T0 + 60_000)
    expect(p.offences).toBe(1)
  })

  it('an identity whose score decayed to zero is forgiven: offences start again', () => {
    const { clock, pm } = penalties({ threshold: 3, decayRate: 60 })
    pm.recordViolation('k', 3)
    clock.advance(61_000)
    expect(pm.recordViolation('k', 3).offences).toBe(2)
    clock.advance(HOUR)
    expect(pm.getPenalty('k')).toMatchObject({ abuseScore: 0, offences: 0, penaltyUntilMs: 0 })
    expect(pm.recordViolation('k', 3)).toMatchObject({ offences: 1, penaltyUntilMs: clock.now + 60_000 })
  })

  it('clearPenalty forgives at once', () => {
    const { pm } = penalties()
    pm.recordViolation('k', 10)
    pm.clearPenalty('k')
    expect(pm.getPenalty('k')).toMatchObject({ abuseScore: 0, offences: 0 })
  })

  it('rejects bad configuration with HALT_INVALID_PENALTY', () => {
    const bad = [
      { threshold: 0, duration: 60 },
      { threshold: 1, duration: 0 },
      { threshold: 1, duration: 60, multiplier: 0 },
      { threshold: 1, duration: 60, multiplier: 2 },
      { threshold: 1, duration: 60, decayRate: 0 },
      { threshold: 1, duration: 60, maxDuration: 30 },
    ]
    for (const config of bad) {
      expect(() => new PenaltyManager({ config }), JSON.stringify(config)).toThrow(HaltConfigError)
      try {
        new PenaltyManager({ config })
      } catch (e) {
        expect((e as HaltConfigError).code).toBe('HALT_INVALID_PENALTY')
      }
    }
    expect(() => new PenaltyManager({ config: { threshold: 1, duration: '5m' } }).recordViolation('k', -1)).toThrow(HaltConfigError)
  })
})

describe('RateLimiter with penalties', () => {
  function setup(multiplier = 0.5) {
    const clock = fakeClock(T0)
    const store = new InMemoryStore({ sweepInterval: 0 })
    const pm = new PenaltyManager({ store, clock, config: { threshold: 3, duration: 600, multiplier, decayRate: 1 } })
    const limiter = new RateLimiter({ store, clock, penalties: pm, policy: { name: 'api', limit: 10, window: 60, algorithm: 'fixed_window' } })
    return { clock, pm, limiter }
  }

  it('records a violation for every blocked request by itself', () => {
    const { pm, limiter } = setup()
    for (let i = 0; i < 10; i++) expect((limiter.check('ip:1') as Decision).allowed).toBe(true)
    expect(pm.getPenalty('ip:1').abuseScore).toBe(0)
    for (let i = 0; i < 2; i++) expect(limiter.check('ip:1')).toMatchObject({ allowed: false, reason: 'limit' })
    expect(pm.getPenalty('ip:1').abuseScore).toBe(2)
    limiter.check('ip:1')
    expect(pm.getPenalty('ip:1').isActive()).toBe(true)
  })

  it('multiplies the limit of a penalised identity while the penalty runs, and says reason penalty', () => {
    const { clock, pm, limiter } = setup(0.5)
    pm.recordViolation('ip:2', 3)
    const d = [1, 2, 3, 4, 5, 6].map(() => limiter.check('ip:2') as Decision)
    expect(d.map((x) => x.allowed)).toEqual([true, true, true, true, true, false])
    expect(d[0]?.limit).toBe(5)
    expect(d[5]?.reason).toBe('penalty')
    // Another identity keeps the full limit.
    expect((limiter.check('ip:3') as Decision).limit).toBe(10)
    // After the penalty (600 s), the full limit is back.
    clock.advance(600_000)
    expect(limiter.check('ip:2')).toMatchObject({ allowed: true, limit: 10 })
  })

  it('the scaled rule shares the state of the policy (a penalty does not hand out a fresh window)', () => {
    const { pm, limiter } = setup(0.5)
    for (let i = 0; i < 8; i++) limiter.check('ip:4')
    pm.recordViolation('ip:4', 3)
    expect(limiter.check('ip:4')).toMatchObject({ allowed: false, reason: 'penalty', limit: 5 })
  })

  it('peek says what a check would under the penalty, and records no violation', async () => {
    const { clock, pm, limiter } = setup(0.5)
    for (let i = 0; i < 6; i++) limiter.check('ip:5')
    expect(limiter.peek('ip:5')).toMatchObject({ allowed: true, limit: 10, remaining: 4 })
    pm.recordViolation('ip:5', 3)
    expect(limiter.peek('ip:5')).toMatchObject({ allowed: false, reason: 'penalty', limit: 5, remaining: 0 })
    expect(limiter.peek({ ip: '203.0.113.5', method: 'GET', path: '/', header: () => undefined })).toMatchObject({ limit: 10 })
    expect(pm.getPenalty('ip:5').abuseScore).toBe(3)
    clock.advance(600_000)
    expect(limiter.peek('ip:5')).toMatchObject({ allowed: true, limit: 10 })
    // Over an asynchronous store too.
    const store = asyncStore()
    const apm = new PenaltyManager({ store, clock, config: { threshold: 1, duration: 60, multiplier: 0.5 } })
    const al = new RateLimiter({ store, clock, penalties: apm, policy: { limit: 4, window: 60 } })
    await apm.recordViolation('k')
    expect(await al.peek('k')).toMatchObject({ allowed: true, limit: 2, remaining: 2 })
  })

  it('compiles the scaled rule once per rule', () => {
    const { pm, limiter } = setup()
    expect(pm.penalised(limiter.rule)).toBe(pm.penalised(limiter.rule))
    expect(pm.penalised(limiter.rule).ns).toBe(limiter.rule.ns)
  })

  it('works over an asynchronous store, and a failing penalty store never fails a check', async () => {
    const clock = fakeClock(T0)
    const store = asyncStore()
    const pm = new PenaltyManager({ store, clock, config: { threshold: 2, duration: 60 } })
    const limiter = new RateLimiter({ store, clock, penalties: pm, policy: { limit: 2, window: 60 } })
    for (let i = 0; i < 4; i++) await limiter.check('k')
    expect((await pm.getPenalty('k')).isActive()).toBe(true)
    expect(await limiter.check('k')).toMatchObject({ allowed: false, reason: 'penalty', limit: 1 })
    const broken = new PenaltyManager({
      store: { ...asyncStore(), consume: () => Promise.reject(new Error('down')), peek: () => Promise.reject(new Error('down')) },
      clock,
      config: { threshold: 1, duration: 60 },
    })
    const l2 = new RateLimiter({ store: asyncStore(), clock, penalties: broken, policy: { limit: 1, window: 60 } })
    expect(await l2.check('k')).toMatchObject({ allowed: true })
    expect(await l2.check('k')).toMatchObject({ allowed: false, reason: 'limit' })
  })

  it('a synchronous limiter refuses an asynchronous penalty store', () => {
    const pm = new PenaltyManager({ store: asyncStore(), config: { threshold: 2, duration: 60 } })
    expect(() => new RateLimiter({ policy: { limit: 1, window: 60 }, penalties: pm as unknown as PenaltyManager })).toThrow(/asynchronous/)
  })
})
