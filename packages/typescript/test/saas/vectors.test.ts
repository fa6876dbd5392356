// spec/saas/vectors through the TypeScript kernels (pure function and InMemoryStore) and the calendar through Intl.
import { describe, expect, it } from 'vitest'
import { evaluate, InMemoryStore, periodBounds } from '../../src/index.js'
import { kernelRule, loadCalendarVectors, loadKernelVectors } from '../support/saas-vectors.js'
import { outcomeFields } from '../support/vectors.js'

for (const file of loadKernelVectors()) {
  describe(`spec/saas vectors: ${file.kernel}`, () => {
    it('has at least 10 cases', () => expect(file.cases.length).toBeGreaterThanOrEqual(10))
    for (const c of file.cases) {
      it(`pure function: ${c.name}`, () => {
        let state: number[] | undefined
        c.steps.forEach((step, i) => {
          const rule = kernelRule(file.kernel, c, step)
          const { state: next, outcome } = evaluate(state, step.t, step.peek ? 0 : (step.cost ?? 1), rule)
          const { state: want, ...fields } = step.expect
          expect(outcomeFields(outcome), `step ${i} at t=${step.t}`).toEqual(fields)
          if (!step.peek) state = next
          if (want === null) expect(state).toBeUndefined()
          else {
            expect(state?.length).toBe(want.length)
            for (const [j, x] of want.entries()) expect(Math.abs((state?.[j] as number) - x), `state[${j}]`).toBeLessThanOrEqual(1e-9)
          }
        })
      })
      it(`InMemoryStore: ${c.name}`, () => {
        const store = new InMemoryStore({ sweepInterval: 0 })
        c.steps.forEach((step, i) => {
          const rule = kernelRule(file.kernel, c, step)
          const o = step.peek ? store.peek(rule.ns, 'k', rule, step.t) : store.consume(rule.ns, 'k', rule, step.t, step.cost ?? 1)
          const { state: _, ...fields } = step.expect
          expect(outcomeFields(o), `step ${i} at t=${step.t}`).toEqual(fields)
        })
      })
    }
  })
}

describe('spec/saas vectors: calendar periods (Intl)', () => {
  for (const c of loadCalendarVectors()) {
    it(`${c.period} in ${c.time_zone} at ${new Date(c.t).toISOString()}: ${c.description}`, () => {
      expect(periodBounds(c.period, c.t, c.time_zone)).toEqual({ startMs: c.start, endMs: c.end })
    })
  }
})
