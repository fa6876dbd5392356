// parsePolicySpec() and describeRule(): the one-line policy grammar of the CLI and the docs.
import { describe, expect, it } from 'vitest'
import { compilePolicy } from '../../src/index.js'
import { describeRule, parsePolicySpec } from '../../src/simulate/index.js'

describe('parsePolicySpec', () => {
  it('reads ALGORITHM:LIMIT/WINDOW and every option', () => {
    expect(parsePolicySpec('token_bucket:100/1m,burst=120')).toEqual({ algorithm: 'token_bucket', limit: 100, window: '1m', burst: 120 })
    expect(parsePolicySpec('sliding_window:100/60s,precision=20,name=api')).toEqual({
      algorithm: 'sliding_window',
      limit: 100,
      window: '60s',
      precision: 20,
      name: 'api',
    })
    expect(parsePolicySpec('leaky_bucket:5/s,burst=20,mode=shaping')).toMatchObject({ window: '1s', leakyMode: 'shaping' })
    expect(parsePolicySpec('leaky_bucket:5/s,shaping')).toMatchObject({ leakyMode: 'shaping' })
    expect(parsePolicySpec('fixed_window:5/1m,block=5m,cost=2')).toMatchObject({ blockDuration: '5m', cost: 2 })
    expect(parsePolicySpec('fixed_window:5/1m,block=30')).toMatchObject({ blockDuration: 30 })
    expect(parsePolicySpec('gcra:2.5/500ms')).toEqual({ algorithm: 'gcra', limit: 2.5, window: '500ms' })
  })

  it('accepts short names and hyphens', () => {
    expect(['tb', 'fw', 'sw', 'lb', 'GCRA', 'token-bucket'].map((a) => parsePolicySpec(`${a}:1/s`).algorithm)).toEqual([
      'token_bucket',
      'fixed_window',
      'sliding_window',
      'leaky_bucket',
      'gcra',
      'token_bucket',
    ])
  })

  it('reads a JSON policy', () => {
    expect(parsePolicySpec('{"algorithm":"gcra","limit":100,"window":"1m"}')).toEqual({ algorithm: 'gcra', limit: 100, window: '1m' })
  })

  it('says what is wrong and what to write', () => {
    const cases: [string, string][] = [
      ['token_bucket', 'missing ":" between the algorithm and LIMIT/WINDOW'],
      ['bucket:1/s', 'unknown algorithm "bucket"; use one of token_bucket, fixed_window, sliding_window, leaky_bucket, gcra'],
      ['gcra:100', '"100" is not LIMIT/WINDOW like 100/1m, 100/60s or 5/s'],
      ['gcra:100/1w', '"100/1w" is not LIMIT/WINDOW'],
      ['gcra:1/s,brust=3', 'unknown option "brust"; use burst=, precision=, mode=, block=, cost=, name='],
      ['gcra:1/s,burst=many', 'burst "many" is not a number'],
      ['gcra:1/s,burst', 'option "burst" needs a value, like burst=10'],
      ['leaky_bucket:1/s,mode=queue', 'mode must be meter or shaping, got "queue"'],
      ['leaky_bucket:1/s,shaping=yes', '"shaping" takes no value (or write mode=shaping)'],
      ['fixed_window:1/s,block=soon', 'block "soon" is not a duration like 30s or 5m'],
      ['{"limit": 1', 'not valid JSON'],
    ]
    for (const [spec, message] of cases) {
      expect(() => parsePolicySpec(spec), spec).toThrow(
        expect.objectContaining({ code: 'HALT_INVALID_POLICY_SPEC', message: expect.stringContaining(message) }),
      )
      expect(() => parsePolicySpec(spec), spec).toThrow(/Write ALGORITHM:LIMIT\/WINDOW\[,OPTION=VALUE\.\.\.\], e\.g\. token_bucket:100\/1m,burst=120/)
    }
  })
})

describe('describeRule', () => {
  it('writes the canonical parameters, leaving defaults out', () => {
    const d = (spec: string) => describeRule(compilePolicy(parsePolicySpec(spec)))
    expect(d('tb:100/60s')).toBe('token_bucket 100/1m')
    expect(d('tb:100/1m,burst=100')).toBe('token_bucket 100/1m')
    expect(d('tb:100/90s,burst=120')).toBe('token_bucket 100/90s burst=120')
    expect(d('gcra:5/s')).toBe('gcra 5/s')
    expect(d('fw:10/1h,burst=99')).toBe('fixed_window 10/1h') // burst means nothing to a window
    expect(d('sw:10/1m,precision=20,block=5m')).toBe('sliding_window 10/1m precision=20 block=5m')
    expect(d('lb:5/s,burst=20,shaping,cost=2')).toBe('leaky_bucket 5/s burst=20 shaping cost=2')
    expect(d('lb:1.5/250ms')).toBe('leaky_bucket 1.5/250ms')
  })

  it('is itself in the grammar: spaces to ":" and ",", it parses back to the same policy', () => {
    for (const spec of ['tb:100/90s,burst=120', 'sw:10/1m,precision=20,block=5m', 'lb:5/s,burst=20,shaping,cost=2', 'gcra:7/2h']) {
      const rule = compilePolicy(parsePolicySpec(spec))
      const again = describeRule(rule).replace(' ', ':').replace(/ /g, ',')
      expect(describeRule(compilePolicy(parsePolicySpec(again)))).toBe(describeRule(rule))
    }
  })
})
