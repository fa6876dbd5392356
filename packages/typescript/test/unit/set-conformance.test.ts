// Runs every spec/vectors/sets case through evaluateSet and through InMemoryStore.consumeSet.
import { describe, expect, it } from 'vitest'
import { compilePolicy, evaluateSet, InMemoryStore, type Rule } from '../../src/index.js'
import { loadSetVectors, outcomeFields, toSetPolicies } from '../support/vectors.js'

const cases = loadSetVectors()

it('has limit-set vectors, shadow ones included', () => {
  expect(cases.length).toBeGreaterThanOrEqual(10)
  expect(cases.some((c) => c.policies.some((p) => p.shadow))).toBe(true)
})

describe('spec vectors: limit sets', () => {
  for (const c of cases) {
    it(`evaluateSet: ${c.name}`, () => {
      const rules: Rule[] = toSetPolicies(c).map(compilePolicy)
      let states: (number[] | null | undefined)[] = rules.map(() => undefined)
      c.steps.forEach((step, i) => {
        const r = evaluateSet(
          states,
          step.t,
          rules.map(() => step.cost),
          rules,
        )
        expect(r.allowed, `step ${i}`).toBe(step.expect.allowed)
        states = states.map((s, j) => r.states[j] ?? s)
        step.expect.policies.forEach((want, j) => {
          const { state, ...fields } = want
          expect(outcomeFields(r.outcomes[j]!), `step ${i}, policy ${j}`).toEqual(fields)
          expect(states[j] ?? null, `step ${i}, policy ${j}: state`).toEqual(state)
        })
      })
    })

    it(`InMemoryStore: ${c.name}`, () => {
      const rules: Rule[] = toSetPolicies(c).map(compilePolicy)
      const store = new InMemoryStore({ sweepInterval: 0 })
      c.steps.forEach((step, i) => {
        const outcomes = store.consumeSet(
          'k',
          rules,
          step.t,
          rules.map(() => step.cost),
        )
        step.expect.policies.forEach((want, j) => {
          const { state: _, ...fields } = want
          expect(outcomeFields(outcomes[j]!), `step ${i}, policy ${j}`).toEqual(fields)
        })
      })
    })
  }
})
