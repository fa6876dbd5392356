// Gate: one or several limiters applied to a request as adapters use them (first rejection wins, headers from the most restrictive).
import { HaltConfigError } from '../core/errors.js'
import type { Decision } from '../core/types.js'
import { type HeaderFormat, isHeaderFormat, moreRestrictive, type SetHeader, writeRateLimitHeaders } from './headers.js'
import { QuotaGuard, type QuotaOption } from './quota.js'
import type { RequestView } from './request.js'

/** What an adapter needs of a limiter (a `RateLimiter` over any store is one). */
export interface HttpLimiter {
  check(req: RequestView): Decision | Promise<Decision>
  writeHeaders<T>(d: Decision, format: HeaderFormat, target: T, set: SetHeader<T>): void
  hasPolicy(name: string): boolean
}

/** Options every adapter takes. */
export interface AdapterOptions {
  /** Rate-limit headers: `'standard'` (default), `'ietf'`, `'legacy'` or `'none'`. */
  headers?: HeaderFormat
  /**
   * Enforce a quota (or several) after the limiters: requests they admit take units of it, and an exhausted quota
   * answers 429 `quota_exceeded` until its period ends. See docs/saas.md.
   *
   * @example
   * haltMiddleware(limiter, { quota: { manager: quotas, quota: { name: 'api_calls', limit: 10_000, period: 'monthly' } } })
   */
  quota?: QuotaOption | readonly QuotaOption[]
}

/**
 * Applies limiters to requests for an adapter. Limiters are checked in order;
 * the first rejection stops the rest (they consume nothing). When all admit,
 * the response describes the most restrictive decision; a request exempt under
 * every limiter gets `reason: 'exempt'`.
 *
 * @example
 * const gate = new Gate([appLimiter, routeLimiter], { headers: 'ietf' })
 * const d = gate.check(view) // a Decision, or a promise of one over a remote store
 */
export class Gate {
  readonly limiters: readonly HttpLimiter[]
  readonly format: HeaderFormat
  private readonly single: HttpLimiter | undefined

  constructor(limiter: HttpLimiter | readonly HttpLimiter[], options: AdapterOptions = {}, adapter = 'haltMiddleware') {
    const list = Array.isArray(limiter) ? [...limiter] : [limiter]
    if (list.length === 0 || list.some((l) => l === null || typeof l !== 'object' || typeof (l as HttpLimiter).check !== 'function')) {
      throw new HaltConfigError(
        'HALT_INVALID_LIMITER',
        `${adapter}(limiter): pass a RateLimiter (or a non-empty array of them). Fix: ${adapter}(new RateLimiter({ policy: presets.PUBLIC_API })).`,
      )
    }
    if (options === null || typeof options !== 'object') throw new HaltConfigError('HALT_INVALID_OPTIONS', `${adapter}: options must be an object.`)
    const format = options.headers ?? 'standard'
    if (!isHeaderFormat(format)) {
      throw new HaltConfigError(
        'HALT_INVALID_HEADER_FORMAT',
        `${adapter}: headers must be 'standard', 'ietf', 'legacy' or 'none', got ${String(options.headers)}.`,
      )
    }
    if (options.quota !== undefined) {
      const quotas = Array.isArray(options.quota) ? options.quota : [options.quota as QuotaOption]
      for (const q of quotas) list.push(new QuotaGuard(q, list[0] as HttpLimiter, adapter))
    }
    this.limiters = list as HttpLimiter[]
    this.format = format
    this.single = list.length === 1 ? (list[0] as HttpLimiter) : undefined
  }

  /** The governing decision for `req`: synchronous when every store is. */
  check(req: RequestView): Decision | Promise<Decision> {
    if (this.single !== undefined) return this.single.check(req)
    return this.from(req, 0, undefined)
  }

  private from(req: RequestView, i: number, best: Decision | undefined): Decision | Promise<Decision> {
    for (; i < this.limiters.length; i++) {
      const d = (this.limiters[i] as HttpLimiter).check(req)
      if (d instanceof Promise) {
        const next = i + 1
        return d.then((x) => (x.allowed ? this.from(req, next, pick(x, best)) : x))
      }
      if (!d.allowed) return d
      best = pick(d, best)
    }
    return best as Decision
  }

  /** Write `d`'s headers (in this gate's format) with `set`. */
  /**
   * Write `d`'s headers on `target` when the response should describe it: a rejection, the request's first decision,
   * or one more restrictive than an earlier limiter's on the same request (`holder`: see `DECISION`).
   */
  describe<T>(holder: object, d: Decision, target: T, set: SetHeader<T>): void {
    const h = holder as Holder
    if (d.allowed && !supersedes(d, h[DECISION])) return
    h[DECISION] = d
    this.writeHeaders(d, target, set)
  }

  writeHeaders<T>(d: Decision, target: T, set: SetHeader<T>): void {
    if (this.format !== 'ietf') {
      writeRateLimitHeaders(d, this.format, target, set)
      return
    }
    // The IETF fields need the deciding policy's window and the limiter's clock.
    const limiter = this.single ?? this.limiterOf(d.policy)
    limiter.writeHeaders(d, this.format, target, set)
  }

  private limiterOf(policy: string): HttpLimiter {
    for (const l of this.limiters) if (l.hasPolicy(policy)) return l
    return this.limiters[0] as HttpLimiter
  }
}

function pick(d: Decision, best: Decision | undefined): Decision {
  return best === undefined || moreRestrictive(d, best) ? d : best
}

/**
 * Whether a response already described by `previous` (an earlier limiter on the
 * same request, e.g. an app-wide one before a route's) should now describe `d`.
 */
export function supersedes(d: Decision, previous: Decision | undefined): boolean {
  return previous === undefined || moreRestrictive(d, previous)
}

/**
 * Where adapters remember the decision a request's response describes: a symbol property on an object of that request
 * that Halt may extend (Express: `res.locals`; Koa: `ctx.state`; others: the request). Not on Express's `req`: adding a
 * property to it changes its shape, which slowed Express's own code for every request (bench/README.md, HTTP section).
 */
export const DECISION = Symbol.for('halt.decision')
type Holder = { [DECISION]?: Decision }
