// Decision -> response: rate-limit headers in four formats, Retry-After, the 429 (or 503) status and JSON body.
import type { Decision } from '../core/types.js'

/**
 * Which rate-limit headers to send on limited responses:
 * - `'standard'` (default): `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (epoch seconds)
 * - `'ietf'`: `RateLimit-Policy` and `RateLimit` structured fields (draft-ietf-httpapi-ratelimit-headers-10/11)
 * - `'legacy'`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch seconds)
 * - `'none'`: none of them
 *
 * Every format adds `Retry-After` (seconds) to a rejection.
 */
export type HeaderFormat = 'standard' | 'ietf' | 'legacy' | 'none'

const FORMATS: readonly string[] = ['standard', 'ietf', 'legacy', 'none']

/** Whether `f` names a header format. */
export function isHeaderFormat(f: unknown): f is HeaderFormat {
  return typeof f === 'string' && FORMATS.includes(f)
}

/** Sets one header on a framework's response object (a plain function: no closure per request). */
export type SetHeader<T> = (target: T, name: string, value: string) => void

/**
 * Write the headers describing `d` to `target`. `windowSeconds` and `nowMs` are
 * only read by the `'ietf'` format (its `w` and relative `t`). Exempt decisions,
 * and those of a limiter whose every policy is shadow, get no headers.
 *
 * A decision of several policies (`d.policies`) gets, in the `'ietf'` format, one
 * list item per enforced policy in each field (`windowSeconds` then maps a policy
 * name to its window); the other formats describe the binding policy, `d` itself.
 *
 * @example
 * writeRateLimitHeaders(d, 'standard', res, (r, n, v) => r.setHeader(n, v))
 */
export function writeRateLimitHeaders<T>(
  d: Decision,
  format: HeaderFormat,
  target: T,
  set: SetHeader<T>,
  windowSeconds: number | ((policy: string) => number) = 0,
  nowMs = 0,
): void {
  if (d.reason === 'exempt' || d.shadow === true) return
  if (format === 'standard') {
    set(target, 'RateLimit-Limit', String(Math.floor(d.limit)))
    set(target, 'RateLimit-Remaining', String(d.remaining))
    set(target, 'RateLimit-Reset', String(d.resetAt))
  } else if (format === 'ietf') {
    const list = d.policies === undefined ? [d] : d.policies.filter((p) => p.shadow !== true)
    let policy = ''
    let limit = ''
    for (const p of list) {
      const name = sfString(p.policy)
      const w = typeof windowSeconds === 'number' ? windowSeconds : windowSeconds(p.policy)
      const t = Math.max(0, p.resetAt - Math.floor(nowMs / 1000))
      policy += `${policy === '' ? '' : ', '}${name};q=${Math.floor(p.limit)};w=${Math.max(1, Math.ceil(w))}`
      limit += `${limit === '' ? '' : ', '}${name};r=${p.remaining};t=${t}`
    }
    set(target, 'RateLimit-Policy', policy)
    set(target, 'RateLimit', limit)
  } else if (format === 'legacy') {
    set(target, 'X-RateLimit-Limit', String(Math.floor(d.limit)))
    set(target, 'X-RateLimit-Remaining', String(d.remaining))
    set(target, 'X-RateLimit-Reset', String(d.resetAt))
  }
  if (!d.allowed) set(target, 'Retry-After', String(retryAfterSeconds(d)))
}

/**
 * The headers of `d` as a plain object (see `writeRateLimitHeaders`).
 *
 * @example
 * rateLimitHeaders(limiter.check('user:42') as Decision) // { 'RateLimit-Limit': '100', 'RateLimit-Remaining': '99', 'RateLimit-Reset': '1764081723' }
 */
export function rateLimitHeaders(d: Decision, format: HeaderFormat = 'standard', windowSeconds = 0, nowMs = 0): Record<string, string> {
  const out: Record<string, string> = {}
  writeRateLimitHeaders(d, format, out, setOnObject, windowSeconds, nowMs)
  return out
}

function setOnObject(o: Record<string, string>, name: string, value: string): void {
  o[name] = value
}

/** Seconds a rejected client should wait: at least 1. */
export function retryAfterSeconds(d: Decision): number {
  return d.retryAfter >= 1 ? d.retryAfter : 1
}

/**
 * 503 when the limiter rejected because its store is down (`onStoreError: 'closed'`), else 429.
 *
 * @example
 * if (!d.allowed) return new Response(rejectionBody(d), { status: rejectionStatus(d), headers: rateLimitHeaders(d) })
 */
export function rejectionStatus(d: Decision): 429 | 503 {
  return d.reason === 'store_error' ? 503 : 429
}

/**
 * The JSON body of a rejection:
 * `{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.","retry_after":42}`
 * (`rate_limiter_unavailable` with status 503 when the store is down and the limiter fails closed;
 * `quota_exceeded` with the quota, its limit and `reset_at`, an ISO 8601 time, for an exhausted quota).
 */
export function rejectionBody(d: Decision): string {
  const s = retryAfterSeconds(d)
  if (d.reason === 'store_error') {
    return `{"error":"rate_limiter_unavailable","message":"Rate limiting is temporarily unavailable. Please try again later.","retry_after":${s}}`
  }
  if (d.reason === 'quota') {
    const at = new Date(d.resetAt * 1000).toISOString().replace('.000Z', 'Z')
    return `{"error":"quota_exceeded","message":"Quota exceeded. It resets at ${at}.","quota":${JSON.stringify(d.policy)},"limit":${d.limit},"reset_at":"${at}","retry_after":${s}}`
  }
  return `{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.","retry_after":${s}}`
}

/**
 * Whether `a` is more restrictive than `b`, i.e. the headers should describe `a`:
 * a rejection beats an admission (the longer wait wins between rejections); between
 * admissions fewer remaining units win, then the later reset. An exempt decision
 * never wins.
 *
 * @example
 * const describe = moreRestrictive(routeDecision, appDecision) ? routeDecision : appDecision
 */
export function moreRestrictive(a: Decision, b: Decision): boolean {
  if (a.reason === 'exempt') return false
  if (b.reason === 'exempt') return true
  if (a.allowed !== b.allowed) return !a.allowed
  if (!a.allowed) return a.retryAfter > b.retryAfter
  if (a.remaining !== b.remaining) return a.remaining < b.remaining
  return a.resetAt > b.resetAt
}

/** An RFC 8941 sf-string: printable ASCII, `"` and `\` escaped; other characters become `_`. */
function sfString(s: string): string {
  let out = '"'
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 34 || c === 92) out += `\\${s[i]}`
    else if (c >= 32 && c < 127) out += s[i]
    else out += '_'
  }
  return `${out}"`
}
