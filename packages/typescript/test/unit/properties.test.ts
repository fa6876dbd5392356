// Property tests of the algorithms on random traffic (fast-check): bounds, equivalences, sufficiency.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { expiresAt } from '../../src/core/algorithms/kernel.js'
import { type AlgorithmName, compilePolicy, evaluate, InMemoryStore, type Policy, toDecision } from '../../src/index.js'

const ALGORITHMS: AlgorithmName[] = ['token_bucket', 'gcra', 'fixed_window', 'sliding_window', 'leaky_bucket']
const RUNS = { numRuns: 300 }

/** Random traffic: gaps (ms, sometimes 0, sometimes negative = clock stepping back) and costs. */
const traffic = (opts: { backwards?: boolean; maxCost?: number } = {}) =>
  fc.array(
    fc.record({
      gap: opts.backwards
        ? fc.oneof(fc.integer({ min: 0, max: 2_000 }), fc.constant(0), fc.integer({ min: -3_000, max: -1 }))
        : fc.oneof(fc.integer({ min: 0, max: 2_000 }), fc.constant(0), fc.integer({ min: 0, max: 30 })),
      cost: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: opts.maxCost ?? 4 })),
    }),
    { minLength: 1, maxLength: 300 },
  )

const policyArb = (algorithm: AlgorithmName) =>
  fc
    .record({
      limit: fc.integer({ min: 1, max: 20 }),
      window: fc.constantFrom(1, 2, 2.5, 10, 60),
      extraBurst: fc.integer({ min: 0, max: 10 }),
      precision: fc.integer({ min: 1, max: 20 }),
      shaping: fc.boolean(),
    })
    .map(
      ({ limit, window, extraBurst, precision, shaping }): Policy => ({
        algorithm,
        limit,
        window,
        burst: limit + extraBurst,
        precision,
        leakyMode: shaping ? 'shaping' : 'meter',
        cost: 0,
      }),
    )

/** Run traffic through the pure function; yields every step with the state before it. */
function* run(policy: Policy, steps: { gap: number; cost: number }[], start = 1_700_000_000_000) {
  const rule = compilePolicy(policy)
  let state: number[] | undefined
  let t = start
  for (const { gap, cost } of steps) {
    t += gap
    const before = state
    const r = evaluate(state, t, cost, rule)
    state = r.state
    yield { t, cost, before, ...r, rule }
  }
}

describe('sliding window', () => {
  it('never admits more than limit within any interval of length window', () => {
    fc.assert(
      fc.property(policyArb('sliding_window'), traffic(), (policy, steps) => {
        const admitted: { t: number; cost: number }[] = []
        for (const s of run(policy, steps)) if (s.outcome.allowed) admitted.push({ t: s.t, cost: s.cost })
        const W = compilePolicy(policy).windowMs
        for (let i = 0; i < admitted.length; i++) {
          let sum = 0
          for (let j = i; j < admitted.length && (admitted[j] as { t: number }).t <= (admitted[i] as { t: number }).t + W; j++) {
            sum += (admitted[j] as { cost: number }).cost
          }
          expect(sum).toBeLessThanOrEqual(policy.limit + 1e-9)
        }
      }),
      RUNS,
    )
  })

  it('keeps state of size precision + 3', () => {
    const rule = compilePolicy({ limit: 5, window: 60, algorithm: 'sliding_window', precision: 7 })
    expect(evaluate(undefined, 0, 1, rule).state).toHaveLength(10)
  })
})

describe('token bucket', () => {
  it('never holds more than burst tokens', () => {
    fc.assert(
      fc.property(policyArb('token_bucket'), traffic({ backwards: true }), (policy, steps) => {
        for (const s of run(policy, steps)) {
          expect(s.state[1]).toBeLessThanOrEqual((policy.burst as number) + 1e-9)
          expect(s.outcome.remaining).toBeLessThanOrEqual(policy.burst as number)
        }
      }),
      RUNS,
    )
  })
})

describe('GCRA', () => {
  it('regression: 2 + 1 + 1 then 3 units of a burst of 7 pass, as in the token bucket (absolute-time rounding)', () => {
    const policy: Policy = { limit: 3, window: 2, burst: 7, cost: 0 }
    const steps = [2, 1, 1, 3].map((cost) => ({ gap: 0, cost }))
    for (const algorithm of ['gcra', 'token_bucket'] as const) {
      expect([...run({ ...policy, algorithm }, steps)].map((s) => [s.outcome.allowed, s.outcome.remaining])).toEqual([
        [true, 5],
        [true, 4],
        [true, 3],
        [true, 0],
      ])
    }
  })

  it('admits exactly what a token bucket of equal rate and burst admits', () => {
    fc.assert(
      fc.property(policyArb('gcra'), traffic(), (policy, steps) => {
        const g = [...run(policy, steps)].map((s) => s.outcome.allowed)
        const tb = [...run({ ...policy, algorithm: 'token_bucket' }, steps)].map((s) => s.outcome.allowed)
        expect(g).toEqual(tb)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('leaky bucket', () => {
  it('admits exactly what a token bucket admits, in meter and shaping mode alike', () => {
    fc.assert(
      fc.property(policyArb('leaky_bucket'), traffic(), (policy, steps) => {
        const lb = [...run(policy, steps)].map((s) => s.outcome.allowed)
        const tb = [...run({ ...policy, algorithm: 'token_bucket' }, steps)].map((s) => s.outcome.allowed)
        expect(lb).toEqual(tb)
      }),
      RUNS,
    )
  })

  it('in shaping mode, admitted requests leave at the drain rate', () => {
    fc.assert(
      fc.property(policyArb('leaky_bucket'), traffic(), (policy, steps) => {
        const p = { ...policy, leakyMode: 'shaping' as const }
        let lastServe = Number.NEGATIVE_INFINITY
        let lastCost = 0
        for (const s of run(p, steps)) {
          if (!s.outcome.allowed || s.cost === 0) continue
          const serve = s.t + s.outcome.delayMs
          // Consecutive served units are at least (cost / rate) apart, up to 1 ms of rounding.
          expect(serve - lastServe).toBeGreaterThanOrEqual(lastCost / s.rule.rate - 1)
          lastServe = serve
          lastCost = s.cost
        }
      }),
      RUNS,
    )
  })
})

describe('every algorithm', () => {
  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: remaining is never negative, and fields are consistent`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), traffic({ backwards: true, maxCost: 30 }), (policy, steps) => {
          for (const s of run({ ...policy, blockDuration: 3 }, steps)) {
            const o = s.outcome
            expect(o.remaining).toBeGreaterThanOrEqual(0)
            expect(Number.isInteger(o.remaining)).toBe(true)
            expect(o.allowed ? o.retryAfterMs === 0 && o.reason === undefined : o.retryAfterMs > 0 && o.reason !== undefined).toBe(true)
            expect(o.resetAtMs).toBeGreaterThanOrEqual(s.t)
          }
        }),
        RUNS,
      )
    })

    it(`${algorithm}: retryAfter is sufficient (the same request then passes if nothing else consumed)`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), traffic(), fc.boolean(), (policy, steps, block) => {
          const p = { ...policy, blockDuration: block ? 2 : 0 }
          for (const s of run(p, steps)) {
            const o = s.outcome
            if (o.allowed || s.cost > s.rule.capacity) continue
            // The rejection may have started a cooldown: retry from the state after the step.
            const later = evaluate(s.state, s.t + o.retryAfterMs, s.cost, s.rule)
            expect(later.outcome.allowed, `retry after ${o.retryAfterMs} ms`).toBe(true)
            const inSeconds = evaluate(s.state, s.t + toDecision(s.rule, o).retryAfter * 1000, s.cost, s.rule)
            expect(inSeconds.outcome.allowed).toBe(true)
            // Not much longer than needed: ceil() of a rounded quotient may add 1 ms.
            if (o.retryAfterMs > 2 && !block) {
              const early = evaluate(s.state, s.t + o.retryAfterMs - 2, s.cost, s.rule)
              expect(early.outcome.allowed, 'retryAfter is not longer than needed').toBe(false)
            }
          }
        }),
        RUNS,
      )
    })

    it(`${algorithm}: a state past its expiry decides exactly as a fresh one (safe to reclaim)`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), traffic({ backwards: true }), fc.boolean(), fc.integer({ min: 0, max: 5000 }), (policy, steps, block, extra) => {
          for (const s of run({ ...policy, blockDuration: block ? 2 : 0 }, steps)) {
            const at = Math.max(expiresAt(s.state, 0, s.rule), s.t) + extra
            for (const cost of [0, 1, s.rule.capacity]) {
              expect(evaluate(s.state, at, cost, s.rule).outcome).toEqual(evaluate(undefined, at, cost, s.rule).outcome)
            }
          }
        }),
        RUNS,
      )
    })

    it(`${algorithm}: the in-memory store decides exactly as the pure function, key by key`, () => {
      fc.assert(
        fc.property(
          policyArb(algorithm),
          fc.array(fc.record({ gap: fc.integer({ min: 0, max: 500 }), cost: fc.integer({ min: 0, max: 3 }), key: fc.integer({ min: 0, max: 4 }) }), {
            maxLength: 200,
          }),
          fc.integer({ min: 1, max: 4 }),
          (policy, steps, maxKeys) => {
            const rule = compilePolicy(policy)
            const store = new InMemoryStore({ sweepInterval: 0, maxKeys: 100 })
            const states = new Map<number, number[]>()
            let t = 1_700_000_000_000
            for (const { gap, cost, key } of steps) {
              t += gap
              const { state, outcome } = evaluate(states.get(key), t, cost, rule)
              states.set(key, state)
              expect({ ...store.consume(rule.ns, `k${key}`, rule, t, cost) }).toEqual(outcome)
            }
            expect(store.size()).toBeLessThanOrEqual(Math.max(maxKeys, 5))
          },
        ),
        RUNS,
      )
    })
  }
})
