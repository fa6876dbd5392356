// simulate(): the summary numbers of small traces, each derived by hand from spec/README.md (the reasoning is in the comments).
import { describe, expect, it } from 'vitest'
import { HaltConfigError, type Policy } from '../../src/index.js'
import { parseTrace, type SimulationResult, simulate, TraceError, type TraceRequest } from '../../src/simulate/index.js'

const s = (sec: number, key?: string, cost?: number): TraceRequest => ({
  t: sec * 1000,
  ...(key !== undefined && { key }),
  ...(cost !== undefined && { cost }),
})
const range = (from: number, to: number, step = 1) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step)

/** One client: one request a second from 0:50 to 1:09, ten on each side of the 1-minute boundary. */
const boundary = range(50, 69).map((t) => s(t))

function byLabel(r: SimulationResult) {
  return Object.fromEntries(r.summaries.map((x) => [x.algorithm + (x.shaping ? '+shaping' : ''), x]))
}

describe('the boundary burst (10 per minute, 20 requests from 0:50 to 1:09)', () => {
  const r = simulate(
    ['fixed_window:10/1m', 'sliding_window:10/1m', 'token_bucket:10/1m', 'gcra:10/1m', 'leaky_bucket:10/1m', 'leaky_bucket:10/1m,shaping'],
    boundary,
    {
      chart: false,
    },
  )
  const p = byLabel(r)

  it('fixed window: admits all 20, because they straddle two windows: 20 in one minute, 2x the limit', () => {
    // Window [0, 60 s) holds 50..59 (10), window [60, 120 s) holds 60..69 (10).
    expect(p.fixed_window).toMatchObject({ requests: 20, admitted: 20, rejected: 0, peakAdmitted: 20, longestRetryAfterMs: 0 })
  })

  it('sliding window: admits 10 and rejects 10; never more than 10 in any minute', () => {
    // Buckets of 6 s: 50..53 in bucket 8, 54..59 in bucket 9. At 60 s (bucket 10) the last 11
    // buckets hold 10, so every request to 69 s is refused. The first that could pass needs
    // bucket 8 out of the ring: at bucket 8 + 10 + 1 = 19, i.e. 114 s; told at 60 s: wait 54 s.
    expect(p.sliding_window).toMatchObject({ admitted: 10, rejected: 10, peakAdmitted: 10, longestRetryAfterMs: 54_000 })
    expect(p.sliding_window?.rejectedBy).toEqual({ limit: 10, cooldown: 0, cost_exceeds_capacity: 0 })
  })

  it('token bucket: the full bucket (10), then refill of one token per 6 s: 13 admitted, longest wait 5 s', () => {
    // After 50..59: 10 - 10 + 9/6 = 1.5 tokens. 60 s: 1.67, admit (0.67). 61 s: 0.83, refuse (wait 1 s).
    // 62 s: 1.0, admit (0). 63..67 s: refuse (waits 5, 4, 3, 2, 1 s). 68 s: admit. 69 s: refuse (5 s).
    expect(p.token_bucket).toMatchObject({ admitted: 13, rejected: 7, peakAdmitted: 13, longestRetryAfterMs: 5000, longestDelayMs: 0 })
    const admittedAt = Array.from(r.runs[2]?.allowed ?? []).flatMap((a, i) => (a ? [50 + i] : []))
    expect(admittedAt).toEqual([...range(50, 60), 62, 68])
  })

  it('GCRA and the leaky bucket (both modes) admit exactly what the token bucket admits', () => {
    const tb = r.runs[2]?.allowed
    for (const i of [3, 4, 5]) expect(r.runs[i]?.allowed).toEqual(tb)
    expect(p.gcra).toMatchObject({ admitted: 13, longestRetryAfterMs: 5000 })
  })

  it('leaky bucket shaping: each admitted request waits for the queue ahead of it; the longest 54 s', () => {
    // The queue drains 1/6 per second: before the request at 50 + k s it holds 5k/6, so the delay
    // is 5k s (k <= 9: 0, 5, ..., 45 s). 60 s: 8.33 queued, delay 50 s. 62 s: 9 queued, delay 54 s.
    const shaping = r.runs[5]
    expect(p['leaky_bucket+shaping']).toMatchObject({ admitted: 13, longestDelayMs: 54_000, longestRetryAfterMs: 5000 })
    expect(Array.from(shaping?.delayMs ?? []).slice(0, 10)).toEqual(range(0, 45_000, 5000))
    expect(r.runs[4]?.delayMs).toBeUndefined() // meter mode asks no delay
  })
})

describe('summaries', () => {
  it('count per key, put the most rejected key first, and name the key of the peak', () => {
    // Fixed window 3/min: a sends 5 (the last 2 refused), b sends 2.
    const trace = [s(0, 'a'), s(0, 'b'), s(1, 'a'), s(1, 'b'), s(2, 'a'), s(3, 'a'), s(4, 'a')]
    const [sum] = simulate(['fixed_window:3/1m'], trace, { chart: false }).summaries
    expect(sum).toMatchObject({ requests: 7, admitted: 5, rejected: 2, peakAdmitted: 3, peakKey: 'a', peakAt: 0 })
    // Refused at 3 s and 4 s, the window ends at 60 s: told 57 s and 56 s.
    expect(sum?.longestRetryAfterMs).toBe(57_000)
    expect(sum?.keys).toEqual([
      { key: 'a', requests: 5, admitted: 3, rejected: 2, admittedUnits: 3, peakAdmitted: 3, longestRetryAfterMs: 57_000, longestDelayMs: 0 },
      { key: 'b', requests: 2, admitted: 2, rejected: 0, admittedUnits: 2, peakAdmitted: 2, longestRetryAfterMs: 0, longestDelayMs: 0 },
    ])
  })

  it('weigh requests by cost; a cost above capacity is counted apart and not taken as a wait', () => {
    // Token bucket 5/min (burst 5, a token per 12 s). 0 s cost 3: admitted, 2 left.
    // 1 s cost 3: 2.083 tokens, refused, wait (3 - 2.083) * 12 s = 11 s. 2 s cost 5: 2.167, refused,
    // wait 2.833 * 12 s = 34 s. 3 s cost 6 > burst: cost_exceeds_capacity (told 60 s, which cannot help).
    const trace = [s(0, undefined, 3), s(1, undefined, 3), s(2, undefined, 5), s(3, undefined, 6)]
    const [sum] = simulate(['token_bucket:5/1m'], trace, { chart: false }).summaries
    expect(sum).toMatchObject({ admitted: 1, rejected: 3, admittedUnits: 3, rejectedUnits: 14, peakAdmitted: 3, longestRetryAfterMs: 34_000 })
    expect(sum?.rejectedBy).toEqual({ limit: 2, cooldown: 0, cost_exceeds_capacity: 1 })
  })

  it("use the policy's cost where the trace gives none", () => {
    const [sum] = simulate(['fixed_window:10/1m,cost=4'], [s(0), s(1), s(2)], { chart: false }).summaries
    expect(sum).toMatchObject({ admitted: 2, rejected: 1, admittedUnits: 8, rejectedUnits: 4 })
  })

  it('count cooldown rejections apart from limit rejections', () => {
    // Fixed window 1/min, block 30 s. 0 s admitted. 1 s over the limit: blocked to 31 s, told
    // max(59 s to the window's end, 30 s) = 59 s. 2 s: cooldown. 40 s: not blocked, still over the limit.
    const [sum] = simulate(['fixed_window:1/1m,block=30s'], [s(0), s(1), s(2), s(40)], { chart: false }).summaries
    expect(sum).toMatchObject({ admitted: 1, rejected: 3, longestRetryAfterMs: 59_000 })
    expect(sum?.rejectedBy).toEqual({ limit: 2, cooldown: 1, cost_exceeds_capacity: 0 })
  })

  it('measure the peak over half-open intervals [t, t + window)', () => {
    // Fixed window 2/s admits all four (0 and 999 in one window, 1000 twice in the next). An interval
    // of 1000 ms holds 999, 1000, 1000 but never 0 and 1000 together: peak 3 (a closed interval would say 4).
    const trace = [0, 999, 1000, 1000].map((t) => ({ t }))
    const [sum] = simulate(['fixed_window:2/s'], trace, { chart: false }).summaries
    expect(sum).toMatchObject({ admitted: 4, peakAdmitted: 3, peakAt: 999 })
  })

  it('replay requests in time order, keeping the input order of ties', () => {
    const r = simulate(['fixed_window:1/1m'], [s(5, 'late'), s(1, 'first'), s(1, 'second')], { chart: false })
    expect(r.requests.map((x) => x.key)).toEqual(['first', 'second', 'late'])
    expect(Array.from(r.runs[0]?.allowed ?? [])).toEqual([1, 1, 1]) // three keys, one request each
  })

  it('give each policy its own state (as if deployed alone), and number duplicate lanes', () => {
    const r = simulate(['fixed_window:1/1m', 'fixed_window:1/1m'], [s(0), s(1)], { chart: false })
    expect(r.summaries.map((x) => [x.label, x.admitted])).toEqual([
      ['fixed_window 1/1m', 1],
      ['fixed_window 1/1m #2', 1],
    ])
  })

  it('accept Policy objects, and label a named one with its name and parameters', () => {
    const policy: Policy = { name: 'login', algorithm: 'sliding_window', limit: 5, window: '1m', precision: 20 }
    const [sum] = simulate([policy], [s(0)], { chart: false }).summaries
    expect(sum).toMatchObject({ label: 'login: sliding_window 5/1m precision=20', description: 'sliding_window 5/1m precision=20' })
  })

  it('describe the trace: requests, keys, units, and a span starting at 0 for relative time', () => {
    const r = simulate(['gcra:1/s'], parseTrace('12,a\n14,b,2\n59.5,a\n', { source: 'x.csv' }), { chart: false })
    expect(r.trace).toEqual({ name: 'x.csv', requests: 3, keys: 2, units: 4, from: 0, to: 60_000 })
  })

  it('start an epoch-time chart on a round time', () => {
    const t0 = Date.UTC(2024, 4, 1, 12, 0, 7)
    const r = simulate(['gcra:1/s'], [{ t: t0 }, { t: t0 + 50_000 }], { chart: false })
    // Span 50 s: steps of 5 s; from 12:00:05, to the first step after the last request.
    expect(r.trace.from).toBe(Date.UTC(2024, 4, 1, 12, 0, 5))
    expect(r.trace.to).toBe(Date.UTC(2024, 4, 1, 12, 1, 0))
  })
})

describe('mistakes', () => {
  it('need at least one policy', () => {
    expect(() => simulate([], [s(0)])).toThrow(expect.objectContaining({ code: 'HALT_INVALID_SIMULATION' }))
  })

  it('report a bad policy with its own code', () => {
    expect(() => simulate(['token_bucket:0/1m'], [s(0)])).toThrow(HaltConfigError)
    expect(() => simulate(['bucket:1/1m'], [s(0)])).toThrow(/unknown algorithm "bucket"/)
  })

  it('report a bad request by its index', () => {
    const bad = [s(0), { t: Number.NaN }] as TraceRequest[]
    expect(() => simulate(['gcra:1/s'], bad)).toThrow(TraceError)
    expect(() => simulate(['gcra:1/s'], bad)).toThrow('trace: request 1: t must be a finite number of milliseconds, got NaN')
    expect(() => simulate(['gcra:1/s'], [{ t: 0, cost: -1 }])).toThrow('request 0: cost must be a finite number >= 0, got -1')
  })
})
