// QuotaManager: calendar quotas (hourly .. yearly, in an IANA time zone) over any store, atomically (spec/saas/README.md §2).
import { quotaRule } from '../core/algorithms/quota.js'
import { HaltConfigError } from '../core/errors.js'
import type { Clock } from '../core/limiter.js'
import type { Rule } from '../core/policy.js'
import type { MaybePromise, Store } from '../core/store.js'
import type { Outcome } from '../core/types.js'
import { Warnings } from '../http/warnings.js'
import { InMemoryStore } from '../stores/memory.js'
import { TelemetryHub } from '../telemetry/hub.js'
import type { TelemetryOption } from '../telemetry/types.js'
import { checkTimeZone, PERIODS, periodBounds, type QuotaPeriodName } from './calendar.js'

/**
 * A quota: `limit` units per calendar period, reset at the period's boundary (a monthly quota on the 1st at 00:00)
 * in `timeZone` (default: the manager's, itself UTC by default).
 *
 * @example
 * const apiCalls: Quota = { name: 'api_calls', limit: 10_000, period: QuotaPeriod.MONTHLY }
 */
export interface Quota {
  /** Namespaces the counters (with the period and time zone): two quotas of different names never share state. */
  name: string
  /** Units per period (a positive finite number). */
  limit: number
  period: QuotaPeriodName
  /** IANA time zone whose calendar sets the boundaries, e.g. `'Europe/Berlin'`. Default: the manager's (UTC). */
  timeZone?: string
}

/** Where a quota stands for one identity. */
export interface QuotaState {
  name: string
  limit: number
  /** Units used in the current period (whole units: `limit - remaining`). */
  used: number
  /** Whole units left in the current period. */
  remaining: number
  /** Epoch seconds when the current period ends and the quota is whole again. */
  resetAt: number
  /** Epoch seconds when the current period started. */
  periodStart: number
  /** Seconds until a request of this cost fits (the period's end); 0 when allowed. */
  retryAfter: number
}

/** What the caller of `consumeQuota` tells the manager's telemetry (the HTTP `quota` option passes both). */
export interface QuotaCallContext {
  /** The request's id, for the decision event (and the log line's `req_id`). */
  requestId?: string
  /** What the caller does when the store fails: the `action` of the `onError` event. Default `'closed'` (nothing taken, the call rejects). */
  onStoreError?: 'open' | 'closed'
}

/** The answer of `checkQuota`, `consumeQuota` and `refundQuota`. */
export interface QuotaResult {
  /** `consumeQuota`: the units were taken. `checkQuota`: they would be. `refundQuota`: always true. */
  allowed: boolean
  quota: QuotaState
}

export interface QuotaManagerOptions {
  /** Default IANA time zone of quotas that give none. Default `'UTC'`. */
  timeZone?: string
  /** Default `Date.now`. */
  clock?: Clock
  /**
   * Told of every `consumeQuota` (onCheck, then onAllowed or onBlocked with reason `'quota'`, the quota's name as
   * the policy), as a limiter's telemetry is; the HTTP `quota` option included. A failed store call reaches `onError`
   * and then rejects (the caller, e.g. the HTTP option's `onStoreError`, decides what then happens).
   */
  telemetry?: TelemetryOption
}

/** A quota, validated, with the rules of its current period (compiled once per period). */
interface Compiled {
  readonly quota: Quota
  readonly ns: string
  readonly timeZone: string
  current: { startMs: number; endMs: number; consume: Rule; refund: Rule } | undefined
}

/** Warnings of the managers' telemetry hooks (a failing hook is reported once), printed with console.warn. */
const quotaWarnings = new Warnings(undefined, undefined)

function positive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0
}

function checkedCost(cost: unknown, what: string): number {
  if (typeof cost === 'number' && Number.isFinite(cost) && cost >= 0) return cost
  throw new HaltConfigError('HALT_INVALID_COST', `${what}: cost must be a finite number >= 0, got ${String(cost)}. Fix: omit it (1) or pass e.g. 5.`)
}

/**
 * Quotas over a store: `consumeQuota` takes units atomically (never more than the limit, however many processes
 * consume at once), `checkQuota` reads without taking, `refundQuota` gives units back for work that failed.
 * Results come directly over a synchronous store (the in-memory one), as promises otherwise.
 *
 * @example
 * const quotas = new QuotaManager(new InMemoryStore())
 * const monthly = { name: 'api_calls', limit: 10_000, period: QuotaPeriod.MONTHLY }
 * const r = quotas.consumeQuota('user:42', monthly)
 * if (!r.allowed) console.log(`quota used up until ${new Date(r.quota.resetAt * 1000).toISOString()}`)
 */
export class QuotaManager<S extends Store = InMemoryStore> {
  readonly store: S
  readonly timeZone: string
  private readonly clock: Clock
  private readonly compiled = new WeakMap<Quota, Compiled>()
  private readonly byContent = new Map<string, Compiled>()
  private readonly telemetry: TelemetryHub | undefined

  constructor(store?: S, options: QuotaManagerOptions = {}) {
    const s = store ?? (new InMemoryStore() as unknown as S)
    if (s === null || typeof s !== 'object' || typeof s.consume !== 'function' || typeof s.peek !== 'function') {
      throw new HaltConfigError('HALT_INVALID_STORE', 'QuotaManager: store must implement consume/peek/reset/clear (e.g. new InMemoryStore()).')
    }
    if (options === null || typeof options !== 'object') throw new HaltConfigError('HALT_INVALID_OPTIONS', 'QuotaManager: options must be an object.')
    this.store = s
    this.timeZone = checkTimeZone(options.timeZone ?? 'UTC')
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new HaltConfigError('HALT_INVALID_CLOCK', 'QuotaManager: clock must be a function returning epoch milliseconds, like Date.now.')
    }
    this.clock = options.clock ?? Date.now
    this.telemetry = options.telemetry === undefined ? undefined : new TelemetryHub(options.telemetry, quotaWarnings.warn.bind(quotaWarnings))
  }

  /**
   * Validate a quota now (configuration time) rather than at its first use; returns it.
   *
   * @example
   * const monthly = quotas.define({ name: 'api_calls', limit: 10_000, period: 'monthly', timeZone: 'Europe/Berlin' })
   */
  define(quota: Quota): Quota {
    this.compile(quota)
    return quota
  }

  /** Whether `cost` units (default 1) would fit now, without taking them. */
  checkQuota(identifier: string, quota: Quota, cost = 1): MaybePromise<S, QuotaResult> {
    const c = checkedCost(cost, 'checkQuota')
    const { q, rule, now } = this.ruleAt(quota, false)
    const id = checkedId(identifier, 'checkQuota')
    return this.map(this.store.peek(rule.ns, id, rule, now), q, rule, now, (o) => o.remaining + 1e-9 >= c)
  }

  /**
   * Take `cost` units (default 1) if they fit: atomic, never beyond the limit. Nothing is taken when they do not fit.
   * `context` is for telemetry only (the HTTP `quota` option passes the request's id and its `onStoreError`).
   */
  consumeQuota(identifier: string, quota: Quota, cost = 1, context?: QuotaCallContext): MaybePromise<S, QuotaResult> {
    const c = checkedCost(cost, 'consumeQuota')
    const { q, rule, now } = this.ruleAt(quota, false)
    const id = checkedId(identifier, 'consumeQuota')
    const t = this.telemetry
    if (t === undefined) return this.map(this.store.consume(rule.ns, id, rule, now, c), q, rule, now, (o) => o.allowed)
    const started = performance.now()
    const failed = (error: unknown): never => {
      t.error({ error, key: id, policy: q.quota.name, operation: 'check', action: context?.onStoreError ?? 'closed' })
      throw error
    }
    const report = (x: QuotaResult): QuotaResult => {
      const { name, limit, remaining, resetAt, retryAfter } = x.quota
      const decision = { allowed: x.allowed, limit, remaining, resetAt, retryAfter, policy: name, delay: 0, ...(x.allowed ? {} : { reason: 'quota' as const }) }
      t.decision({
        key: id,
        cost: c,
        decision,
        durationMs: performance.now() - started,
        ...(context?.requestId === undefined ? {} : { requestId: context.requestId }),
      })
      return x
    }
    let r: QuotaResult | Promise<QuotaResult>
    try {
      r = this.map(this.store.consume(rule.ns, id, rule, now, c), q, rule, now, (o) => o.allowed) as QuotaResult | Promise<QuotaResult>
    } catch (e) {
      return failed(e)
    }
    return (r instanceof Promise ? r.then(report, failed) : report(r)) as MaybePromise<S, QuotaResult>
  }

  /** Give back `cost` units (default 1) of the current period, e.g. for a call that failed; never below 0 used. */
  refundQuota(identifier: string, quota: Quota, cost = 1): MaybePromise<S, QuotaResult> {
    const c = checkedCost(cost, 'refundQuota')
    const { q, rule, now } = this.ruleAt(quota, true)
    const id = checkedId(identifier, 'refundQuota')
    return this.map(this.store.consume(rule.ns, id, rule, now, c), q, rule, now, () => true)
  }

  /** Forget `identifier`'s usage of `quota` (every period). */
  resetQuota(identifier: string, quota: Quota): MaybePromise<S, void> {
    const q = this.compile(quota)
    return this.store.reset(q.ns, checkedId(identifier, 'resetQuota')) as MaybePromise<S, void>
  }

  /** The current period of `quota` (epoch ms), as the manager's clock and the quota's time zone give it. */
  period(quota: Quota): { startMs: number; endMs: number } {
    const q = this.compile(quota)
    return periodBounds(q.quota.period, this.clock(), q.timeZone)
  }

  /** The storage namespace of a quota's counters (spec/KEYS.md): `quota:<name>:<period>:<time zone>:q`. */
  namespace(quota: Quota): string {
    return this.compile(quota).ns
  }

  private map(o: Outcome | Promise<Outcome>, q: Compiled, rule: Rule, now: number, allowed: (o: Outcome) => boolean): MaybePromise<S, QuotaResult> {
    const make = (x: Outcome): QuotaResult => {
      const ok = allowed(x)
      return {
        allowed: ok,
        quota: {
          name: q.quota.name,
          limit: rule.limit,
          used: Math.max(0, rule.limit - x.remaining),
          remaining: x.remaining,
          resetAt: Math.ceil(x.resetAtMs / 1000),
          periodStart: Math.floor(rule.burst / 1000),
          retryAfter: ok ? 0 : Math.ceil(Math.max(1, x.resetAtMs - now) / 1000),
        },
      }
    }
    return (o instanceof Promise ? o.then(make) : make(o)) as MaybePromise<S, QuotaResult>
  }

  /** The rule of the period holding `now` (compiled when the period changes). */
  private ruleAt(quota: Quota, refund: boolean): { q: Compiled; rule: Rule; now: number } {
    const q = this.compile(quota)
    const now = this.clock()
    let cur = q.current
    if (cur === undefined || now < cur.startMs || now >= cur.endMs) {
      const { startMs, endMs } = periodBounds(q.quota.period, now, q.timeZone)
      const name = q.ns.slice(0, -2) // the namespace without ':q' (Rule adds the kernel's code)
      cur = { startMs, endMs, consume: quotaRule(name, q.quota.limit, startMs, endMs, false), refund: quotaRule(name, q.quota.limit, startMs, endMs, true) }
      q.current = cur
    }
    return { q, rule: refund ? cur.refund : cur.consume, now }
  }

  private compile(quota: Quota): Compiled {
    if (quota !== null && typeof quota === 'object') {
      const known = this.compiled.get(quota)
      if (known !== undefined) return known
    }
    const q = validateQuota(quota)
    const timeZone = checkTimeZone(q.timeZone ?? this.timeZone)
    const ns = `quota:${q.name}:${q.period}:${timeZone}:q`
    let c = this.byContent.get(`${ns}|${q.limit}`)
    if (c === undefined) {
      c = { quota: Object.freeze({ ...q }), ns, timeZone, current: undefined }
      if (this.byContent.size >= 1000) this.byContent.clear()
      this.byContent.set(`${ns}|${q.limit}`, c)
    }
    this.compiled.set(quota, c)
    return c
  }
}

/** Check a quota's fields; every mistake is a HaltConfigError saying how to fix it. */
export function validateQuota(quota: Quota): Quota {
  if (quota === null || typeof quota !== 'object') {
    throw new HaltConfigError(
      'HALT_INVALID_QUOTA',
      `a quota must be an object like { name: 'api_calls', limit: 10000, period: 'monthly' }, got ${String(quota)}.`,
    )
  }
  const { name, limit, period } = quota
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new HaltConfigError(
      'HALT_INVALID_QUOTA',
      `quota name must be a non-empty string of at most 200 characters, got ${JSON.stringify(name)}. Fix: name: 'api_calls'.`,
    )
  }
  if (!positive(limit)) {
    throw new HaltConfigError(
      'HALT_INVALID_QUOTA',
      `quota '${name}': limit must be a positive finite number of units per period, got ${String(limit)}. Fix: limit: 10000.`,
    )
  }
  if (!PERIODS.includes(period)) {
    throw new HaltConfigError(
      'HALT_INVALID_QUOTA',
      `quota '${name}': period must be one of ${PERIODS.join(', ')} (the QuotaPeriod constants), got ${JSON.stringify(period)}.`,
    )
  }
  if (quota.timeZone !== undefined) checkTimeZone(quota.timeZone)
  return quota
}

function checkedId(identifier: unknown, what: string): string {
  if (typeof identifier === 'string') return identifier
  throw new HaltConfigError('HALT_INVALID_IDENTIFIER', `${what}: the identifier must be a string such as 'user:42', got ${typeof identifier}.`)
}
