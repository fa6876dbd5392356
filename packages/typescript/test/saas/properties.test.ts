// Property tests (fast-check) of calendar periods, the quota kernel and the penalty kernel.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { penaltyRule } from '../../src/core/algorithms/penalty.js'
import { quotaRule } from '../../src/core/algorithms/quota.js'
import { evaluate, periodBounds, QuotaPeriod, type QuotaPeriodName } from '../../src/index.js'

const ZONES = ['UTC', 'America/New_York', 'Europe/Berlin', 'Asia/Kolkata', 'America/Santiago', 'Australia/Lord_Howe', 'Pacific/Chatham']
const PERIODS = Object.values(QuotaPeriod) as QuotaPeriodName[]
const instant = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2040, 0, 1) })

describe('calendar periods', () => {
  it('hold their instant, tile the timeline (the next period starts where one ends) and have calendar lengths', () => {
    fc.assert(
      fc.property(instant, fc.constantFrom(...PERIODS), fc.constantFrom(...ZONES), (t, period, zone) => {
        const b = periodBounds(period, t, zone)
        expect(b.startMs).toBeLessThanOrEqual(t)
        expect(b.endMs).toBeGreaterThan(t)
        expect(periodBounds(period, b.startMs, zone)).toEqual(b)
        expect(periodBounds(period, b.endMs - 1, zone)).toEqual(b)
        expect(periodBounds(period, b.endMs, zone).startMs).toBe(b.endMs)
        const hours = (b.endMs - b.startMs) / 3_600_000
        const range: Record<QuotaPeriodName, [number, number]> = {
          hourly: [0.5, 2],
          daily: [22, 26],
          weekly: [166, 170],
          monthly: [27 * 24, 32 * 24],
          yearly: [364 * 24, 367 * 24],
        }
        const [lo, hi] = range[period]
        expect(hours).toBeGreaterThanOrEqual(lo)
        expect(hours).toBeLessThanOrEqual(hi)
      }),
      { numRuns: 500 },
    )
  })
})

describe('quota kernel', () => {
  it('never takes more than the limit in a period, whatever the costs and refunds', () => {
    const S = Date.UTC(2026, 0, 1)
    const E = Date.UTC(2026, 1, 1)
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.record({ cost: fc.integer({ min: 0, max: 8 }), refund: fc.boolean() }), { maxLength: 200 }),
        (limit, ops) => {
          const take = quotaRule('p', limit, S, E, false)
          const give = quotaRule('p', limit, S, E, true)
          let state: number[] | undefined
          let used = 0
          for (const op of ops) {
            const r = evaluate(state, S + 1000, op.cost, op.refund ? give : take)
            state = r.state
            if (op.refund) used = Math.max(0, used - op.cost)
            else if (r.outcome.allowed) used += op.cost
            else expect(used + op.cost).toBeGreaterThan(limit)
            expect(used).toBeLessThanOrEqual(limit)
            expect(state[3]).toBe(used)
            expect(r.outcome.remaining).toBe(limit - used)
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('penalty kernel', () => {
  it('the score never rises without a violation, and decays at the rate; penalties only start at the threshold', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 600_000 }), severity: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5 })) }), {
          maxLength: 100,
        }),
        (ops) => {
          const rule = penaltyRule('p', 6, 60_000, 30, 480_000)
          let t = 1_700_000_000_000
          let state: number[] | undefined
          let score = 0
          let offences = 0
          for (const op of ops) {
            t += op.gap
            const r = evaluate(state, t, op.severity, rule)
            const decayed = Math.max(0, score - (op.gap * 30) / 3_600_000)
            expect(r.outcome.delayMs).toBeCloseTo(decayed < 1e-9 ? op.severity : decayed + op.severity, 6)
            expect(r.outcome.retryAfterMs).toBeLessThanOrEqual(480_000)
            if (r.outcome.remaining > offences) expect(r.outcome.delayMs + 1e-9).toBeGreaterThanOrEqual(6)
            score = r.outcome.delayMs
            offences = r.outcome.remaining
            state = r.state
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})
