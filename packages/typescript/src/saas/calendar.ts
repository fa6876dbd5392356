// Calendar periods in an IANA time zone (Intl, no dependency): where an hour, day, week, month or year starts and ends.
import { HaltConfigError } from '../core/errors.js'

/** The calendar periods a quota can reset on. */
export const QuotaPeriod = {
  HOURLY: 'hourly',
  DAILY: 'daily',
  /** ISO weeks: Monday 00:00 to the next Monday 00:00. */
  WEEKLY: 'weekly',
  MONTHLY: 'monthly',
  YEARLY: 'yearly',
} as const
export type QuotaPeriodName = (typeof QuotaPeriod)[keyof typeof QuotaPeriod]

export const PERIODS = Object.values(QuotaPeriod) as string[]

/** One period: `[startMs, endMs)` in epoch milliseconds. */
export interface PeriodBounds {
  startMs: number
  endMs: number
}

const DAY_MS = 86_400_000
const formatters = new Map<string, Intl.DateTimeFormat>()

/** The formatter of a time zone; throws a HaltConfigError for a name Intl does not know. */
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      })
    } catch {
      throw new HaltConfigError(
        'HALT_INVALID_TIME_ZONE',
        `unknown time zone ${JSON.stringify(timeZone)}. Fix: use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'.`,
      )
    }
    formatters.set(timeZone, f)
  }
  return f
}

/** Check a time zone name (at configuration time). */
export function checkTimeZone(timeZone: unknown): string {
  if (typeof timeZone !== 'string' || timeZone.length === 0) {
    throw new HaltConfigError('HALT_INVALID_TIME_ZONE', `timeZone must be an IANA name such as 'UTC' or 'Europe/Berlin', got ${String(timeZone)}.`)
  }
  formatter(timeZone)
  return timeZone
}

/** The wall-clock time of instant `t` in `timeZone`, written as if it were UTC (ms, whole seconds). */
function wallClock(t: number, timeZone: string): number {
  const parts = formatter(timeZone).formatToParts(new Date(t))
  let y = 0
  let mo = 0
  let d = 0
  let h = 0
  let mi = 0
  let s = 0
  for (const p of parts) {
    if (p.type === 'year') y = Number(p.value)
    else if (p.type === 'month') mo = Number(p.value)
    else if (p.type === 'day') d = Number(p.value)
    else if (p.type === 'hour') h = Number(p.value)
    else if (p.type === 'minute') mi = Number(p.value)
    else if (p.type === 'second') s = Number(p.value)
  }
  const u = new Date(0)
  u.setUTCFullYear(y, mo - 1, d) // setUTCFullYear keeps years 0-99 as they are (Date.UTC would add 1900)
  u.setUTCHours(h, mi, s, 0)
  return u.getTime()
}

/** The zone's offset at `t` (ms, local minus UTC). */
function offsetAt(t: number, timeZone: string): number {
  const whole = Math.floor(t / 1000) * 1000
  return wallClock(whole, timeZone) - whole
}

/**
 * The first instant whose wall-clock time in `timeZone` is at or after `wall` (a wall-clock time written as UTC ms):
 * the instant itself when it exists once, the earlier of two in a repeated hour (clocks set back), and the end of
 * the gap when clocks skip it (spec/saas/README.md §1).
 */
export function instantOf(wall: number, timeZone: string): number {
  const offsets = new Set([offsetAt(wall - DAY_MS, timeZone), offsetAt(wall, timeZone), offsetAt(wall + DAY_MS, timeZone)])
  let best = Number.POSITIVE_INFINITY
  for (const o of offsets) {
    const t = wall - o
    if (t < best && offsetAt(t, timeZone) === o) best = t
  }
  if (best !== Number.POSITIVE_INFINITY) return best
  // In a gap: search the transition, the first second whose wall-clock time is at or after `wall`.
  const sorted = [...offsets].sort((a, b) => a - b)
  let lo = Math.floor((wall - (sorted[sorted.length - 1] as number)) / 1000) // wall clock before `wall`
  let hi = Math.ceil((wall - (sorted[0] as number)) / 1000) // wall clock at or after `wall`
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (wallClock(mid * 1000, timeZone) >= wall) hi = mid
    else lo = mid
  }
  return hi * 1000
}

/**
 * The period of kind `period` that holds instant `t` in `timeZone`: it starts at the calendar boundary (the hour,
 * midnight, Monday midnight, the 1st at midnight, January 1st at midnight) and ends at the next one.
 *
 * @example
 * periodBounds('monthly', Date.UTC(2026, 1, 14), 'UTC') // { startMs: Date.UTC(2026, 1, 1), endMs: Date.UTC(2026, 2, 1) }
 */
export function periodBounds(period: QuotaPeriodName, t: number, timeZone = 'UTC'): PeriodBounds {
  const wall = new Date(wallClock(t, timeZone))
  const y = wall.getUTCFullYear()
  const mo = wall.getUTCMonth()
  const d = wall.getUTCDate()
  let start: number
  let end: number
  const at = (year: number, month: number, day: number, hour = 0): number => {
    const u = new Date(0)
    u.setUTCFullYear(year, month, day)
    u.setUTCHours(hour, 0, 0, 0)
    return u.getTime()
  }
  switch (period) {
    case 'hourly':
      start = at(y, mo, d, wall.getUTCHours())
      end = at(y, mo, d, wall.getUTCHours() + 1)
      break
    case 'daily':
      start = at(y, mo, d)
      end = at(y, mo, d + 1)
      break
    case 'weekly': {
      const back = (wall.getUTCDay() + 6) % 7 // days since Monday
      start = at(y, mo, d - back)
      end = at(y, mo, d - back + 7)
      break
    }
    case 'monthly':
      start = at(y, mo, 1)
      end = at(y, mo + 1, 1)
      break
    case 'yearly':
      start = at(y, 0, 1)
      end = at(y + 1, 0, 1)
      break
    default:
      throw new HaltConfigError('HALT_INVALID_QUOTA', `unknown quota period ${JSON.stringify(period)}. Fix: use one of ${PERIODS.join(', ')}.`)
  }
  if (timeZone === 'UTC') return { startMs: start, endMs: end }
  return { startMs: instantOf(start, timeZone), endMs: instantOf(end, timeZone) }
}
