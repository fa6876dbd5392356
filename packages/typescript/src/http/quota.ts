// The HTTP `quota` option: a quota enforced on routes as one more limiter of the gate, answering 429 quota_exceeded.
import { HaltConfigError } from '../core/errors.js'
import type { Decision } from '../core/types.js'
import type { Quota, QuotaCallContext, QuotaResult } from '../saas/quota.js'
import { requestIdOf } from '../telemetry/hub.js'
import type { HttpLimiter } from './gate.js'
import { type HeaderFormat, type SetHeader, writeRateLimitHeaders } from './headers.js'
import type { RequestView } from './request.js'

/**
 * A quota enforced by an adapter (`haltMiddleware(limiter, { quota: { manager, quota } })`). It is checked after the
 * limiters and only for requests they admitted; an exhausted quota answers 429 with
 * `{"error":"quota_exceeded", ..., "reset_at": ...}` and `Retry-After` until the period ends.
 */
export interface QuotaOption {
  /** A `QuotaManager` over any store. */
  manager: QuotaConsumer
  /** The quota, or a function of the request choosing one (e.g. by plan: `plans.quotaResolver(planOf)`); none: not limited. */
  quota: Quota | ((req: RequestView) => Quota | undefined | null)
  /**
   * Whose quota: default, the key the first limiter gives the request (its key strategy: IP, user, API key, ...).
   * Return undefined to leave a request unmetered.
   */
  key?: (req: RequestView) => string | undefined
  /** Units a request takes: a number or a function of the request. Default 1. */
  cost?: number | ((req: RequestView) => number)
  /** When the quota's store fails: `'open'` (default) lets the request through, `'closed'` answers 503. */
  onStoreError?: 'open' | 'closed'
}

/** What the option needs of a `QuotaManager` (one over any store is one). */
export interface QuotaConsumer {
  consumeQuota(identifier: string, quota: Quota, cost?: number, context?: QuotaCallContext): QuotaResult | Promise<QuotaResult>
  define(quota: Quota): Quota
  period(quota: Quota): { startMs: number; endMs: number }
}

/** A limiter that knows the identity it would key a request by (a `RateLimiter` does). */
interface Identifying {
  identify?(req: RequestView): string | undefined
}

const EXEMPT = (policy: string): Decision => ({ allowed: true, limit: 0, remaining: 0, resetAt: 0, retryAfter: 0, policy, reason: 'exempt', delay: 0 })

/** The gate's limiter for one `QuotaOption`. */
export class QuotaGuard implements HttpLimiter {
  /** Quotas seen, by name (for `hasPolicy` and the IETF headers' window). */
  private readonly quotas = new Map<string, Quota>()
  private readonly keyOf: (req: RequestView) => string | undefined
  private readonly quotaOf: (req: RequestView) => Quota | undefined | null
  private readonly costOf: (req: RequestView) => number
  private readonly closed: boolean

  constructor(
    readonly option: QuotaOption,
    first: HttpLimiter | undefined,
    adapter: string,
  ) {
    const fix = `Fix: ${adapter}(limiter, { quota: { manager: new QuotaManager(store), quota: { name: 'api_calls', limit: 10000, period: 'monthly' } } }).`
    if (option === null || typeof option !== 'object' || option.manager === null || typeof option.manager?.consumeQuota !== 'function') {
      throw new HaltConfigError('HALT_INVALID_QUOTA_OPTION', `${adapter}: quota needs a QuotaManager as manager. ${fix}`)
    }
    const q = option.quota
    if (typeof q === 'function') this.quotaOf = q
    else {
      option.manager.define(q) // validated now, at configuration time
      this.quotas.set(q.name, q)
      this.quotaOf = () => q
    }
    if (option.key !== undefined) {
      if (typeof option.key !== 'function')
        throw new HaltConfigError('HALT_INVALID_QUOTA_OPTION', `${adapter}: quota.key must be a function of the request. ${fix}`)
      this.keyOf = option.key
    } else {
      const identify = (first as Identifying | undefined)?.identify
      if (typeof identify !== 'function') {
        throw new HaltConfigError('HALT_INVALID_QUOTA_OPTION', `${adapter}: quota.key is required when the first limiter is not a RateLimiter. ${fix}`)
      }
      this.keyOf = (req) => identify.call(first, req)
    }
    const cost = option.cost ?? 1
    if (typeof cost === 'function') this.costOf = cost
    else if (typeof cost === 'number' && Number.isFinite(cost) && cost >= 0) this.costOf = () => cost
    else
      throw new HaltConfigError(
        'HALT_INVALID_QUOTA_OPTION',
        `${adapter}: quota.cost must be a finite number >= 0 or a function of the request, got ${String(cost)}.`,
      )
    const mode = option.onStoreError ?? 'open'
    if (mode !== 'open' && mode !== 'closed') {
      throw new HaltConfigError('HALT_INVALID_QUOTA_OPTION', `${adapter}: quota.onStoreError must be 'open' or 'closed', got ${String(mode)}.`)
    }
    this.closed = mode === 'closed'
  }

  /** Take the request's units of its quota. Nothing the request carries can make this throw. */
  check(req: RequestView): Decision | Promise<Decision> {
    let quota: Quota | undefined | null
    let key: string | undefined
    let cost: number
    try {
      quota = this.quotaOf(req)
      key = quota ? this.keyOf(req) : undefined
      cost = this.costOf(req)
    } catch {
      return EXEMPT('')
    }
    if (!quota || key === undefined) return EXEMPT(quota?.name ?? '')
    if (!(typeof cost === 'number' && Number.isFinite(cost) && cost >= 0)) cost = 1
    const q = quota
    let r: QuotaResult | Promise<QuotaResult>
    try {
      if (!this.quotas.has(q.name) && this.quotas.size < 1000) this.quotas.set(q.name, q)
      r = this.option.manager.consumeQuota(key, q, cost, { requestId: requestIdOf(req), onStoreError: this.closed ? 'closed' : 'open' })
    } catch {
      return this.failed(q)
    }
    return r instanceof Promise ? r.then(toDecision, () => this.failed(q)) : toDecision(r)
  }

  writeHeaders<T>(d: Decision, format: HeaderFormat, target: T, set: SetHeader<T>): void {
    if (format !== 'ietf') {
      writeRateLimitHeaders(d, format, target, set)
      return
    }
    const q = this.quotas.get(d.policy)
    const p = q === undefined ? undefined : this.option.manager.period(q)
    const now = Date.now()
    writeRateLimitHeaders(d, format, target, set, p === undefined ? d.resetAt - Math.floor(now / 1000) : (p.endMs - p.startMs) / 1000, now)
  }

  hasPolicy(name: string): boolean {
    return this.quotas.has(name)
  }

  private failed(q: Quota): Decision {
    if (!this.closed) return EXEMPT(q.name)
    return { allowed: false, limit: q.limit, remaining: 0, resetAt: 0, retryAfter: 1, policy: q.name, reason: 'store_error', delay: 0 }
  }
}

function toDecision(r: QuotaResult): Decision {
  const q = r.quota
  return {
    allowed: r.allowed,
    limit: q.limit,
    remaining: q.remaining,
    resetAt: q.resetAt,
    retryAfter: q.retryAfter,
    policy: q.name,
    ...(r.allowed ? {} : { reason: 'quota' as const }),
    delay: 0,
  }
}
