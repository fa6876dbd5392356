// MetricsTelemetry: in-process counters (by outcome, reason and policy) and a histogram of check latency, read with snapshot().
import { HaltConfigError } from '../core/errors.js'
import { LATENCY_BUCKETS_MS, outcomeOf, reasonOf } from './labels.js'
import type { DecisionEvent, StoreErrorEvent, Telemetry } from './types.js'

/** Decisions of one kind. Shadow-mode decisions are counted apart: they never turned a request away. */
export interface DecisionCounts {
  /** Every decision: allowed + blocked + exempt + shadow.allowed + shadow.blocked. */
  checks: number
  allowed: number
  /** Requests turned away. */
  blocked: number
  exempt: number
  /** Decisions of policies in shadow mode: `blocked` would have been rejected, and were admitted. */
  shadow: { allowed: number; blocked: number }
  nearLimit: number
  /** Rejections (enforced or shadow) by reason: `limit`, `cooldown`, `penalty`, ... */
  byReason: Record<string, number>
}

export interface LatencySnapshot {
  count: number
  sumMs: number
  maxMs: number
  /** Cumulative counts: observations taking at most `leMs` milliseconds; the last bucket is `Infinity`. */
  buckets: { leMs: number; count: number }[]
}

export interface MetricsSnapshot extends DecisionCounts {
  storeErrors: number
  /** The same counts per policy name (policies are few: the key is never a label). */
  byPolicy: Record<string, DecisionCounts & { storeErrors: number }>
  /** Time of each check, the store call included (exempt requests, which reach no store, are not timed). */
  latency: LatencySnapshot
}

class Counts {
  allowed = 0
  blocked = 0
  exempt = 0
  shadowAllowed = 0
  shadowBlocked = 0
  nearLimit = 0
  storeErrors = 0
  readonly reasons = new Map<string, number>()

  add(e: DecisionEvent): void {
    const d = e.decision
    const outcome = outcomeOf(d)
    if (e.shadow === true && outcome !== 'exempt') {
      if (outcome === 'allowed') this.shadowAllowed++
      else this.shadowBlocked++
    } else if (outcome === 'allowed') this.allowed++
    else if (outcome === 'blocked') this.blocked++
    else this.exempt++
    if (outcome === 'blocked') {
      const r = reasonOf(d)
      this.reasons.set(r, (this.reasons.get(r) ?? 0) + 1)
    }
  }

  snapshot(): DecisionCounts & { storeErrors: number } {
    const byReason: Record<string, number> = Object.create(null) // names are data: '__proto__' is a key like any other
    for (const [r, n] of this.reasons) byReason[r] = n
    return {
      checks: this.allowed + this.blocked + this.exempt + this.shadowAllowed + this.shadowBlocked,
      allowed: this.allowed,
      blocked: this.blocked,
      exempt: this.exempt,
      shadow: { allowed: this.shadowAllowed, blocked: this.shadowBlocked },
      nearLimit: this.nearLimit,
      byReason,
      storeErrors: this.storeErrors,
    }
  }
}

export interface MetricsTelemetryOptions {
  /** Upper bounds of the latency buckets in milliseconds, increasing. Default from 0.01 ms to 2.5 s. */
  buckets?: readonly number[]
}

/**
 * Counts decisions in process and keeps a latency histogram; `snapshot()` reads
 * them, `reset()` zeroes them. For a scrape endpoint use `halt/prometheus`; for
 * OpenTelemetry, `halt/otel`.
 *
 * @example
 * const metrics = new MetricsTelemetry()
 * const limiter = new RateLimiter({ policy, telemetry: metrics })
 * // later
 * const { allowed, blocked, latency } = metrics.snapshot()
 * metrics.quantile(0.99) // ms: the upper bound of the bucket holding the 99th percentile
 */
export class MetricsTelemetry implements Telemetry {
  private readonly bounds: readonly number[]
  private total = new Counts()
  private policies = new Map<string, Counts>()
  private hist: number[]
  private count = 0
  private sum = 0
  private max = 0

  constructor(options: MetricsTelemetryOptions = {}) {
    const b = options?.buckets ?? LATENCY_BUCKETS_MS
    if (
      !Array.isArray(b) ||
      b.length === 0 ||
      b.some((x, i) => typeof x !== 'number' || !(x > 0) || !Number.isFinite(x) || (i > 0 && x <= (b[i - 1] as number)))
    ) {
      throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'MetricsTelemetry: buckets must be increasing positive milliseconds, e.g. [0.1, 1, 10, 100].')
    }
    this.bounds = [...b]
    this.hist = new Array<number>(this.bounds.length + 1).fill(0)
  }

  onCheck(e: DecisionEvent): void {
    this.total.add(e)
    this.policy(e.decision.policy).add(e)
    const ms = e.durationMs
    if (ms === undefined || !(ms >= 0)) return
    let i = 0
    while (i < this.bounds.length && ms > (this.bounds[i] as number)) i++
    this.hist[i] = (this.hist[i] as number) + 1
    this.count++
    this.sum += ms
    if (ms > this.max) this.max = ms
  }

  onNearLimit(e: DecisionEvent): void {
    this.total.nearLimit++
    this.policy(e.decision.policy).nearLimit++
  }

  onError(e: StoreErrorEvent): void {
    this.total.storeErrors++
    this.policy(e.policy).storeErrors++
  }

  snapshot(): MetricsSnapshot {
    const byPolicy: MetricsSnapshot['byPolicy'] = Object.create(null)
    for (const [name, c] of this.policies) byPolicy[name] = c.snapshot()
    let cumulative = 0
    const buckets = this.hist.map((n, i) => {
      cumulative += n
      return { leMs: i < this.bounds.length ? (this.bounds[i] as number) : Number.POSITIVE_INFINITY, count: cumulative }
    })
    return { ...this.total.snapshot(), byPolicy, latency: { count: this.count, sumMs: this.sum, maxMs: this.max, buckets } }
  }

  /**
   * The latency under which a fraction `q` (0-1) of checks completed, as the
   * upper bound of the bucket that holds it (the largest observation for the
   * last bucket); 0 before any check.
   */
  quantile(q: number): number {
    if (this.count === 0) return 0
    const rank = Math.max(1, Math.ceil(Math.min(Math.max(q, 0), 1) * this.count))
    let seen = 0
    for (let i = 0; i < this.hist.length; i++) {
      seen += this.hist[i] as number
      if (seen >= rank) return i < this.bounds.length ? Math.min(this.bounds[i] as number, this.max) : this.max
    }
    return this.max
  }

  reset(): void {
    this.total = new Counts()
    this.policies = new Map()
    this.hist.fill(0)
    this.count = 0
    this.sum = 0
    this.max = 0
  }

  private policy(name: string): Counts {
    let c = this.policies.get(name)
    if (c === undefined) {
      c = new Counts()
      this.policies.set(name, c)
    }
    return c
  }
}
