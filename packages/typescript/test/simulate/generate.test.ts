// generateTrace(): repeatable with a seed, and each pattern has the shape it promises.
import { describe, expect, it } from 'vitest'
import { DEFAULT_START, generateTrace, prng } from '../../src/simulate/index.js'

const MIN = 60_000

describe('generateTrace', () => {
  it('is a function of its options: the same seed gives the same trace, another seed another', () => {
    for (const pattern of ['steady', 'bursty', 'spike', 'ramp', 'abusive'] as const) {
      const a = generateTrace({ pattern, seed: 42, duration: '2m', rate: '3/s' })
      expect(generateTrace({ pattern, seed: 42, duration: '2m', rate: '3/s' })).toEqual(a)
      expect(generateTrace({ pattern, seed: 43, duration: '2m', rate: '3/s' }).requests).not.toEqual(a.requests)
    }
  })

  it('covers [start, start + duration) in time order, on whole milliseconds', () => {
    for (const pattern of ['steady', 'bursty', 'spike', 'ramp', 'abusive'] as const) {
      const t = generateTrace({ pattern, seed: 1, duration: '90s', rate: '4/s' })
      expect(t).toMatchObject({ from: DEFAULT_START, to: DEFAULT_START + 90_000 })
      const times = t.requests.map((r) => r.t)
      expect(times.every((x, i) => Number.isInteger(x) && x >= DEFAULT_START && x < DEFAULT_START + 90_000 && (i === 0 || x >= (times[i - 1] as number)))).toBe(
        true,
      )
    }
  })

  it('steady: about rate x duration requests (Poisson: within 5 standard deviations)', () => {
    // 5/s for 10 min: mean 3000, standard deviation sqrt(3000) = 55.
    for (const seed of [1, 2, 3]) {
      const n = generateTrace({ pattern: 'steady', seed, duration: '10m', rate: '5/s' }).requests.length
      expect(Math.abs(n - 3000)).toBeLessThan(5 * 55)
    }
  })

  it('bursty: the same mean rate, in clumps of 20 requests within a second', () => {
    const r = generateTrace({ pattern: 'bursty', seed: 9, duration: '20m', rate: '2/s' }).requests
    expect(Math.abs(r.length - 2400)).toBeLessThan(5 * Math.sqrt(2400) * Math.sqrt(20)) // clumps make it 20x more variable
    const gaps = r.slice(1).map((x, i) => x.t - (r[i]?.t as number))
    const short = gaps.filter((g) => g < 1000).length
    expect(short / gaps.length).toBeGreaterThan(0.9) // 19 of every 20 gaps are inside a clump
  })

  it('spike: ten times the rate in the middle tenth', () => {
    const r = generateTrace({ pattern: 'spike', seed: 4, duration: '10m', rate: '5/s' }).requests
    const inSpike = r.filter((x) => x.t - DEFAULT_START >= 4.5 * MIN && x.t - DEFAULT_START < 5.5 * MIN).length
    const before = r.filter((x) => x.t - DEFAULT_START < 4.5 * MIN).length
    // Spike: 50/s for 60 s = 3000. Before it: 5/s for 270 s = 1350.
    expect(Math.abs(inSpike - 3000)).toBeLessThan(5 * Math.sqrt(3000))
    expect(Math.abs(before - 1350)).toBeLessThan(5 * Math.sqrt(1350))
  })

  it('ramp: rises linearly from 0, so the first half holds a quarter of the requests', () => {
    const r = generateTrace({ pattern: 'ramp', seed: 5, duration: '10m', rate: '10/s' }).requests
    // Integral of a linear ramp to 10/s over 600 s: 3000; over the first half: 750.
    const firstHalf = r.filter((x) => x.t - DEFAULT_START < 5 * MIN).length
    expect(Math.abs(r.length - 3000)).toBeLessThan(5 * Math.sqrt(3000))
    expect(Math.abs(firstHalf - 750)).toBeLessThan(5 * Math.sqrt(750))
  })

  it('abusive: ten clients at the rate, and an abuser at ten times it', () => {
    const r = generateTrace({ pattern: 'abusive', seed: 7, duration: '10m', rate: '1/s' }).requests
    const perKey = new Map<string, number>()
    for (const x of r) perKey.set(x.key as string, (perKey.get(x.key as string) ?? 0) + 1)
    expect([...perKey.keys()].sort()).toEqual([...Array.from({ length: 10 }, (_, i) => `client-${String(i + 1).padStart(2, '0')}`), 'abuser'].sort())
    for (const [key, n] of perKey) {
      const mean = key === 'abuser' ? 6000 : 600
      expect(Math.abs(n - mean), key).toBeLessThan(5 * Math.sqrt(mean))
    }
  })

  it('spreads requests over --keys clients', () => {
    const keys = new Set(generateTrace({ pattern: 'steady', seed: 1, duration: '1m', rate: '10/s', keys: 3 }).requests.map((r) => r.key))
    expect([...keys].sort()).toEqual(['client-01', 'client-02', 'client-03'])
  })

  it('refuses bad options with a message that says what to write', () => {
    expect(() => generateTrace({ pattern: 'wavy' as 'steady' })).toThrow('unknown pattern "wavy"; use one of steady, bursty, spike, ramp, abusive.')
    expect(() => generateTrace({ pattern: 'steady', rate: 'fast' })).toThrow(/rate must be a positive rate like 5\/s, 300\/m or 1000\/1h/)
    expect(() => generateTrace({ pattern: 'steady', duration: '-1m' })).toThrow(/duration must be a positive duration like 90s/)
    expect(() => generateTrace({ pattern: 'steady', rate: '10000/s', duration: '1h' })).toThrow(/would generate about 36,000,000 requests; at most 5,000,000/)
    expect(() => generateTrace({ pattern: 'abusive', keys: 1.5 })).toThrow('keys must be a positive whole number, got 1.5.')
  })
})

describe('prng', () => {
  it('is uniform enough: mean 1/2, every tenth of [0, 1) about equally often', () => {
    const next = prng(123)
    const deciles = new Array(10).fill(0)
    let sum = 0
    let outside = 0
    for (let i = 0; i < 100_000; i++) {
      const u = next()
      if (!(u >= 0 && u < 1)) outside++
      sum += u
      deciles[Math.floor(u * 10)]++
    }
    expect(outside).toBe(0)
    expect(Math.abs(sum / 100_000 - 0.5)).toBeLessThan(0.005)
    for (const d of deciles) expect(Math.abs(d - 10_000)).toBeLessThan(500)
  })
})
