// Plan tables and the policy(req) resolver: a plan per request picks its policy; unknown plans fall back.
import { describe, expect, it } from 'vitest'
import { type Decision, definePlans, getPlanPolicy, HaltConfigError, InMemoryStore, presets, RateLimiter } from '../../src/index.js'
import { view } from '../http/support.js'
import { fakeClock } from '../support/clock.js'

const plans = definePlans(
  {
    Free: { policy: { name: 'free', limit: 2, window: 60, keyStrategy: 'api_key' }, quota: { name: 'calls_free', limit: 100, period: 'monthly' } },
    team: { name: 'team', limit: 5, window: 60, keyStrategy: 'api_key' },
  },
  { defaultPlan: 'free' },
)

describe('definePlans', () => {
  it('looks plans up ignoring case; policies and quotas', () => {
    expect(plans.names).toEqual(['Free', 'team'])
    expect(plans.policy('FREE').name).toBe('free')
    expect(plans.policy(' Team ').limit).toBe(5)
    expect(plans.quota('free')?.limit).toBe(100)
    expect(plans.quota('team')).toBeUndefined()
    expect(plans.has('team') && !plans.has('gold')).toBe(true)
    expect(getPlanPolicy('team', plans).limit).toBe(5)
    expect(getPlanPolicy('pro')).toBe(presets.PLAN_PRO)
  })

  it('fails at definition time on a bad table', () => {
    const code = (f: () => unknown) => {
      try {
        f()
        return 'none'
      } catch (e) {
        expect(e).toBeInstanceOf(HaltConfigError)
        return (e as HaltConfigError).code
      }
    }
    expect(code(() => definePlans({}))).toBe('HALT_INVALID_PLANS')
    expect(code(() => definePlans({ a: { limit: -1, window: 60 } }))).toBe('HALT_INVALID_PLANS')
    expect(code(() => definePlans({ a: { name: 'x', limit: 1, window: 60 }, b: { name: 'x', limit: 2, window: 60 } }))).toBe('HALT_INVALID_PLANS')
    expect(code(() => definePlans({ a: { limit: 1, window: 60 }, A: { limit: 1, window: 60 } }))).toBe('HALT_INVALID_PLANS')
    expect(code(() => definePlans({ a: { name: 'a', limit: 1, window: 60 } }, { defaultPlan: 'gold' }))).toBe('HALT_UNKNOWN_PLAN')
    expect(code(() => definePlans({ a: { policy: { limit: 1, window: 60 }, quota: { name: 'q', limit: 0, period: 'monthly' } } }))).toBe('HALT_INVALID_QUOTA')
    expect(code(() => plans.policy('gold'))).toBe('HALT_UNKNOWN_PLAN')
  })
})

describe('the policy(req) resolver', () => {
  const accounts: Record<string, string> = { 'key-team': 'team', 'key-free': 'free', 'key-odd': 'platinum' }
  const limiter = () =>
    new RateLimiter({
      store: new InMemoryStore({ sweepInterval: 0 }),
      clock: fakeClock(),
      policy: plans.resolver((req) => accounts[req.header('x-api-key') ?? '']),
      defaultPolicy: plans.policy(plans.defaultPlan),
      exemptPrivateIps: false,
    })
  const req = (key: string) => view({ headers: { 'x-api-key': key } })

  it('gives each request its plan`s policy, counted apart per plan', () => {
    const l = limiter()
    const team = [1, 2, 3, 4, 5, 6].map(() => l.check(req('key-team')) as Decision)
    expect(team.map((d) => d.allowed)).toEqual([true, true, true, true, true, false])
    expect(team[0]?.policy).toBe('team')
    const free = [1, 2, 3].map(() => l.check(req('key-free')) as Decision)
    expect(free.map((d) => d.allowed)).toEqual([true, true, false])
    expect(l.debugKey(req('key-team')).policy).toBe('team')
  })

  it('an unknown or missing plan falls back to the default plan', () => {
    const l = limiter()
    expect((l.check(req('key-odd')) as Decision).policy).toBe('free')
    expect((l.check(req('nobody')) as Decision).policy).toBe('free')
  })

  it('a plan function that throws falls back to the default policy without failing the request', () => {
    const l = new RateLimiter({
      policy: plans.resolver(() => {
        throw new Error('db down')
      }),
      defaultPolicy: plans.policy('free'),
      exemptPrivateIps: false,
      onWarning: () => {},
    })
    expect((l.check(req('key-team')) as Decision).policy).toBe('free')
  })
})
