// Locale-free formatting and parsing of durations, rates and numbers for the simulator's table, chart and CLI.
import { HaltConfigError } from '../core/errors.js'

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Round step lengths (ms) for chart bins and ticks. */
const STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
  10_800_000, 21_600_000, 43_200_000, 86_400_000, 172_800_000, 604_800_000,
]

/** The smallest round step (1ms, 2ms, 5ms, ... 30s, 1m, 2m, 5m, ... 1d, 2d, 1w, then whole weeks) of at least `atLeast` ms. */
export function niceStep(atLeast: number): number {
  for (const s of STEPS) if (s >= atLeast) return s
  const week = STEPS[STEPS.length - 1] as number
  return Math.ceil(atLeast / week) * week
}

/** A number with at most `digits` decimals, trailing zeros dropped: `fixed(2.50, 2)` is `'2.5'`. */
export function fixed(n: number, digits = 1): string {
  const s = n.toFixed(digits)
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s
}

/** A count with thousands separators (`12,345`), the same on every machine. */
export function count(n: number): string {
  const whole = Math.round(n) === n
  const [int, frac] = (whole ? String(n) : fixed(n, 2)).split('.')
  const grouped = (int as string).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return frac === undefined ? grouped : `${grouped}.${frac}`
}

/** A window length, exact: `60000` is `1m`, `90000` is `90s`, `1500` is `1500ms`. */
export function formatWindow(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const u = UNIT_MS[unit] as number
    if (ms >= u && ms % u === 0) return `${ms / u}${unit}`
  }
  return `${fixed(ms, 3)}ms`
}

/** A wait, rounded for reading: `250ms`, `12.3s`, `4m5s`, `2h10m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${fixed(ms / 1000, 1)}s`
  if (ms < 3_600_000) {
    const s = Math.round(ms / 1000)
    return s % 60 === 0 ? `${s / 60}m` : `${Math.floor(s / 60)}m${s % 60}s`
  }
  const m = Math.round(ms / 60_000)
  return m % 60 === 0 ? `${m / 60}h` : `${Math.floor(m / 60)}h${m % 60}m`
}

/** An offset from the start of a trace, for axis labels: `0`, `500ms`, `1.5s`, `1m30s`, `2h`, `1d6h`. */
export function formatOffset(ms: number): string {
  if (ms === 0) return '0'
  if (ms < 1000) return `${fixed(ms, 1)}ms`
  let rest = ms
  let out = ''
  for (const unit of ['d', 'h', 'm'] as const) {
    const u = UNIT_MS[unit] as number
    if (rest >= u) {
      out += `${Math.floor(rest / u)}${unit}`
      rest %= u
    }
  }
  if (rest > 0) out += `${fixed(rest / 1000, 3)}s`
  return out
}

/**
 * Parse a duration given on the command line or to the generator: a number of
 * seconds, or a number with a unit (`500ms`, `30s`, `10m`, `1h`, `1d`). `what` names it in errors.
 */
export function parseDuration(value: string | number, what: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value > 0) return value * 1000
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value)
    if (m) {
      const ms = Number(m[1]) * (UNIT_MS[m[2] ?? 's'] as number)
      if (ms > 0) return ms
    }
  }
  throw new HaltConfigError(
    'HALT_INVALID_GENERATOR',
    `${what} must be a positive duration like 90s, 10m, 1h or 500ms (a bare number is seconds), got ${JSON.stringify(value)}.`,
  )
}

/**
 * Parse a rate into units per second: `5/s`, `300/m`, `300/1m`, `1000/h`, `0.5/s`, or a bare
 * number (per second).
 */
export function parseRate(value: string | number, what: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value > 0) return value
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d))?\s*$/.exec(value)
    if (m) {
      const per = m[3] === undefined ? 1000 : Number(m[2] ?? 1) * (UNIT_MS[m[3]] as number)
      const rate = (Number(m[1]) / per) * 1000
      if (rate > 0 && Number.isFinite(rate)) return rate
    }
  }
  throw new HaltConfigError(
    'HALT_INVALID_GENERATOR',
    `${what} must be a positive rate like 5/s, 300/m or 1000/1h (a bare number is per second), got ${JSON.stringify(value)}.`,
  )
}
