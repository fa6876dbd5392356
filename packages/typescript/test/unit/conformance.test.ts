// Runs every spec/vectors case through the pure algorithm functions and through InMemoryStore.
import { describe, expect, it } from 'vitest'
import { compilePolicy, evaluate, InMemoryStore } from '../../src/index.js'
import { loadVectors, outcomeFields, toPolicy } from '../support/vectors.js'

const files = loadVectors()

function expectState(actual: ArrayLike<number>, expected: number[]) {
  expect(actual.length).toBe(expected.length)
  for (let i = 0; i < expected.length; i++) expect(Math.abs((actual[i] as number) - (expected[i] as number))).toBeLessThanOrEqual(1e-9)
}

it('has vectors for all five algorithms, at least 15 cases each', () => {
  expect(files.map((f) => f.algorithm).sort()).toEqual(['fixed_window', 'gcra', 'leaky_bucket', 'sliding_window', 'token_bucket'])
  for (const f of files) expect(f.cases.length).toBeGreaterThanOrEqual(15)
})

for (const file of files) {
  describe(`spec vectors: ${file.algorithm}`, () => {
    for (const c of file.cases) {
      it(`pure function: ${c.name}`, () => {
        const rule = compilePolicy(toPolicy(file.algorithm, c))
        let state: number[] | undefined
        c.steps.forEach((step, i) => {
          const { state: next, outcome } = evaluate(state, step.t, step.peek ? 0 : (step.cost ?? 1), rule)
          const { state: want, ...fields } = step.expect
          expect(outcomeFields(outcome), `step ${i} at t=${step.t}`).toEqual(fields)
          if (!step.peek) state = next
          if (want) expectState(state ?? next, want)
        })
      })

      it(`InMemoryStore: ${c.name}`, () => {
        const rule = compilePolicy(toPolicy(file.algorithm, c))
        const store = new InMemoryStore({ sweepInterval: 0 })
        c.steps.forEach((step, i) => {
          const o = step.peek ? store.peek(rule.ns, 'k', rule, step.t) : store.consume(rule.ns, 'k', rule, step.t, step.cost ?? 1)
          const { state: _state, ...fields } = step.expect
          expect(outcomeFields(o), `step ${i} at t=${step.t}`).toEqual(fields)
        })
      })
    }
  })
}
