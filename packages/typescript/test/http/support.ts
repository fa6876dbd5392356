// Test helpers for the HTTP layer: plain RequestViews, limiters on a fake clock, and the spec/http cases.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Decision, type HaltWarning, InMemoryStore, type Policy, RateLimiter, type RateLimiterOptions, type RequestView } from '../../src/index.js'
import { fakeClock } from '../support/clock.js'
import { SPEC_DIR } from '../support/vectors.js'

export const T0 = 1_700_000_000_000

export interface ViewInit {
  ip?: string | undefined
  method?: string
  path?: string
  headers?: Record<string, string | string[] | undefined>
  user?: unknown
}

/** A RequestView over plain data; list header values are joined with ', ' as HTTP defines. */
export function view(init: ViewInit = {}): RequestView {
  const headers = init.headers ?? {}
  return {
    ip: 'ip' in init ? init.ip : '203.0.113.7',
    method: init.method ?? 'GET',
    path: init.path ?? '/api/items',
    header(name: string) {
      const v = headers[name]
      return Array.isArray(v) ? v.join(', ') : v
    },
    user: init.user,
  }
}

/** A limiter on a fake clock that collects its warnings instead of printing them. */
export function httpLimiter(options: Partial<RateLimiterOptions<InMemoryStore>> & { policy?: RateLimiterOptions['policy'] } = {}) {
  const clock = fakeClock(T0)
  const warnings: HaltWarning[] = []
  const limiter = new RateLimiter({
    store: new InMemoryStore({ sweepInterval: 0 }),
    clock,
    onWarning: (w) => warnings.push(w),
    ...options,
    policy: options.policy ?? { name: 'api', limit: 100, window: 60 },
  })
  return { limiter, clock, warnings }
}

// ---- spec/http cases ----

export const HTTP_SPEC = join(SPEC_DIR, 'http')

export function loadSpec<T>(file: string): T {
  return JSON.parse(readFileSync(join(HTTP_SPEC, file), 'utf8')) as T
}

export interface SpecConfig {
  trusted_proxies?: string[]
  proxy_header?: string
  exempt_private_ips?: boolean
  exempt_health_checks?: boolean
  exemptions?: string[]
  ipv6_prefix?: number
  on_missing_identity?: 'ip' | 'shared' | 'allow'
  api_key_secret?: string
}

export interface RequestCase {
  name: string
  description?: string
  config?: SpecConfig
  policy?: { key_strategy?: Policy['keyStrategy'] }
  request: { peer: string | null; method: string; path: string; headers: Record<string, string | string[]>; user?: unknown }
  expect: { client_ip?: string | null; key?: string | null; exempt?: string | null }
}

export function specLimiter(c: RequestCase) {
  const cfg = c.config ?? {}
  return httpLimiter({
    policy: { name: 'spec', limit: 100, window: 60, ...(c.policy?.key_strategy ? { keyStrategy: c.policy.key_strategy } : {}) },
    trustedProxies: cfg.trusted_proxies,
    proxyHeader: cfg.proxy_header,
    exemptPrivateIps: cfg.exempt_private_ips,
    exemptHealthChecks: cfg.exempt_health_checks,
    exemptions: cfg.exemptions,
    ipv6Prefix: cfg.ipv6_prefix,
    onMissingIdentity: cfg.on_missing_identity,
    apiKeySecret: cfg.api_key_secret,
  })
}

export function specView(c: RequestCase): RequestView {
  return view({ ip: c.request.peer ?? undefined, method: c.request.method, path: c.request.path, headers: c.request.headers, user: c.request.user })
}

export interface SpecDecision {
  allowed: boolean
  limit: number
  remaining: number
  reset_at: number
  retry_after: number
  policy: string
  reason: Decision['reason'] | null
  delay: number
}

export function toTsDecision(d: SpecDecision): Decision {
  return {
    allowed: d.allowed,
    limit: d.limit,
    remaining: d.remaining,
    resetAt: d.reset_at,
    retryAfter: d.retry_after,
    policy: d.policy,
    reason: d.reason ?? undefined,
    delay: d.delay,
  }
}
