// Seeded traffic generators: steady, bursty, a spike, a ramp, an abusive client among well-behaved ones.
import { HaltConfigError } from '../core/errors.js'
import { count, fixed, formatWindow, parseDuration, parseRate } from './format.js'
import type { Trace, TraceRequest } from './trace.js'

export const PATTERNS = ['steady', 'bursty', 'spike', 'ramp', 'abusive'] as const
export type Pattern = (typeof PATTERNS)[number]

/** 2024-01-01T00:00:00Z: aligned to every minute, hour and day, so fixed windows start at round offsets. */
export const DEFAULT_START = 1_704_067_200_000
/** Generators refuse to produce more requests than this (about 100 MB of trace). */
export const MAX_REQUESTS = 5_000_000

export interface GenerateOptions {
  /**
   * - `steady`: random (Poisson) arrivals at `rate`.
   * - `bursty`: clumps of `burstSize` requests within `burstSpread`, clumps arriving at random; mean `rate`.
   * - `spike`: `rate` throughout, and `spikeFactor` times that for the middle tenth of the trace.
   * - `ramp`: from 0 rising linearly to `rate` at the end.
   * - `abusive`: `keys` well-behaved clients at `rate` each, and one client `abuser` at `abuseFactor` times that.
   */
  pattern: Pattern
  /** Same seed, same trace, on every machine. Default 1. */
  seed?: number
  /** Length of the trace: seconds, or `'90s'`, `'10m'`, `'1h'`. Default `'10m'`. */
  duration?: number | string
  /** Requests per second, or `'5/s'`, `'300/m'`. Default `'5/s'`. */
  rate?: number | string
  /** Clients: requests are spread over keys `client-01` ... (abusive: the well-behaved ones). Default 1 (abusive: 10). */
  keys?: number
  /** Epoch ms of the first instant. Default 2024-01-01T00:00:00Z. */
  start?: number
  /** bursty: requests per clump. Default 20. */
  burstSize?: number
  /** bursty: a clump's requests arrive within this span. Default `'1s'`. */
  burstSpread?: number | string
  /** spike: multiple of `rate` during the spike. Default 10. */
  spikeFactor?: number
  /** abusive: multiple of a well-behaved client's rate the abuser sends. Default 10. */
  abuseFactor?: number
}

/** mulberry32: a tiny, fast, well-distributed 32-bit PRNG; returns numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function bad(problem: string): never {
  throw new HaltConfigError('HALT_INVALID_GENERATOR', problem)
}

function positiveOption(value: number | undefined, fallback: number, what: string, integer = false): number {
  const v = value ?? fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    bad(`${what} must be a positive ${integer ? 'whole number' : 'number'}, got ${String(value)}.`)
  }
  return v
}

/**
 * Generate a trace. Deterministic: the same options give the same requests, byte for byte.
 * Arrival times are random (exponential gaps) around the pattern's rate, rounded to the millisecond.
 *
 * @example
 * const trace = generateTrace({ pattern: 'bursty', seed: 42, duration: '10m', rate: '5/s' })
 * trace.requests.length // about 3000
 */
export function generateTrace(options: GenerateOptions): Trace {
  if (options === null || typeof options !== 'object') bad('generateTrace needs options like { pattern: "steady", rate: "5/s", duration: "10m" }.')
  const pattern = options.pattern
  if (!PATTERNS.includes(pattern)) bad(`unknown pattern ${JSON.stringify(pattern)}; use one of ${PATTERNS.join(', ')}.`)
  const seed = options.seed ?? 1
  if (!Number.isInteger(seed)) bad(`seed must be a whole number, got ${String(seed)}.`)
  const durationMs = Math.round(parseDuration(options.duration ?? '10m', 'duration'))
  const perSecond = parseRate(options.rate ?? '5/s', 'rate')
  const start = options.start ?? DEFAULT_START
  if (!Number.isFinite(start)) bad(`start must be epoch milliseconds, got ${String(start)}.`)
  const keys = positiveOption(options.keys, pattern === 'abusive' ? 10 : 1, 'keys', true)
  const burstSize = positiveOption(options.burstSize, 20, 'burstSize', true)
  const spikeFactor = positiveOption(options.spikeFactor, 10, 'spikeFactor')
  const abuseFactor = positiveOption(options.abuseFactor, 10, 'abuseFactor')
  const spread = parseDuration(options.burstSpread ?? '1s', 'burstSpread')
  const rate = perSecond / 1000 // per ms
  const expected =
    pattern === 'abusive'
      ? rate * durationMs * (keys + abuseFactor)
      : pattern === 'spike'
        ? rate * durationMs * (1 + (spikeFactor - 1) / 10)
        : rate * durationMs
  if (expected > MAX_REQUESTS) {
    bad(
      `${pattern} at ${fixed(perSecond, 3)}/s for ${formatWindow(durationMs)} would generate about ${count(Math.round(expected))} requests; at most ${count(MAX_REQUESTS)}. Lower rate or duration.`,
    )
  }

  const random = prng(seed)
  /** Poisson arrivals at `r` per ms over [from, to). */
  const poisson = (r: number, from: number, to: number, each: (t: number) => void) => {
    if (r <= 0) return
    let t = from
    for (;;) {
      t += -Math.log(1 - random()) / r
      if (t >= to) return
      each(t)
    }
  }
  const width = String(keys).length < 2 ? 2 : String(keys).length
  const clientKey = (i: number) => `client-${String(i + 1).padStart(width, '0')}`
  const times: { t: number; key?: string }[] = []
  const add = (t: number, key?: string) => {
    const at = start + Math.floor(t)
    if (keys > 1 && key === undefined) times.push({ t: at, key: clientKey(Math.floor(random() * keys)) })
    else if (key === undefined) times.push({ t: at })
    else times.push({ t: at, key })
  }

  switch (pattern) {
    case 'steady':
      poisson(rate, 0, durationMs, (t) => add(t))
      break
    case 'bursty':
      poisson(rate / burstSize, 0, durationMs, (t0) => {
        for (let i = 0; i < burstSize; i++) {
          const t = t0 + random() * spread
          if (t < durationMs) add(t)
        }
      })
      break
    case 'spike': {
      poisson(rate, 0, durationMs, (t) => add(t))
      poisson(rate * (spikeFactor - 1), durationMs * 0.45, durationMs * 0.55, (t) => add(t))
      break
    }
    case 'ramp':
      // Thinning: candidates at the final rate, each kept with probability t / duration.
      poisson(rate, 0, durationMs, (t) => {
        if (random() < t / durationMs) add(t)
      })
      break
    case 'abusive':
      for (let k = 0; k < keys; k++) poisson(rate, 0, durationMs, (t) => add(t, clientKey(k)))
      poisson(rate * abuseFactor, 0, durationMs, (t) => add(t, 'abuser'))
      break
  }
  times.sort((a, b) => a.t - b.t)
  const requests: TraceRequest[] = times
  const r = `${fixed(perSecond, 3)}/s`
  const clients = keys > 1 ? ` over ${keys} clients` : ''
  const detail = {
    steady: `${r}${clients}`,
    bursty: `${r} in clumps of ${burstSize}${clients}`,
    spike: `${r}, ${fixed(spikeFactor, 2)}x for a tenth${clients}`,
    ramp: `0 to ${r}${clients}`,
    abusive: `${keys} clients at ${r}, abuser at ${fixed(perSecond * abuseFactor, 3)}/s`,
  }[pattern]
  return { requests, from: start, to: start + durationMs, name: `${pattern} (${detail}, ${formatWindow(durationMs)}, seed ${seed})` }
}
