// RateLimiter with RequestViews: exemptions, dynamic policy and cost, key strategies, warnings, configuration errors.
import { describe, expect, it } from 'vitest'
import { type DecisionEvent, HaltConfigError, type Policy, presets, RateLimiter, rateLimitHeaders, WarningCode } from '../../src/index.js'
import { asyncStore } from '../support/async-store.js'
import { httpLimiter, T0, view } from './support.js'

function configError(fn: () => unknown): HaltConfigError {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(HaltConfigError)
    return e as HaltConfigError
  }
  throw new Error('expected a HaltConfigError')
}

describe('check(request)', () => {
  it('limits by client address and returns decisions synchronously on the in-memory store', () => {
    const { limiter } = httpLimiter({ policy: { name: 'api', limit: 2, window: 60 } })
    const a = view({ ip: '203.0.113.7' })
    expect(limiter.check(a)).toMatchObject({ allowed: true, remaining: 1 })
    expect(limiter.check(a)).toMatchObject({ allowed: true, remaining: 0 })
    expect(limiter.check(a)).toMatchObject({ allowed: false, reason: 'limit', retryAfter: 30 })
    expect(limiter.check(view({ ip: '203.0.113.8' }))).toMatchObject({ allowed: true })
    // The request's key is the string key.
    expect(limiter.check('ip:203.0.113.7').allowed).toBe(false)
  })

  it('gives exempt requests reason exempt without touching the store or the stats', () => {
    const { limiter } = httpLimiter({ policy: { name: 'api', limit: 1, window: 60 } })
    for (let i = 0; i < 5; i++) expect(limiter.check(view({ path: '/healthz' }))).toMatchObject({ allowed: true, reason: 'exempt', policy: 'api' })
    for (let i = 0; i < 5; i++) expect(limiter.check(view({ ip: '10.0.0.7' }))).toMatchObject({ reason: 'exempt' })
    expect(limiter.store.size()).toBe(0)
    expect(limiter.stats()).toMatchObject({ totalChecks: 0 })
    expect(rateLimitHeaders(limiter.check(view({ path: '/ping' })))).toEqual({})
  })

  it('keys an IPv6 client by its /64, so rotating addresses inside it does not help', () => {
    const { limiter } = httpLimiter({ policy: { name: 'api', limit: 2, window: 60 } })
    expect(limiter.check(view({ ip: '2001:db8:1:2::1' })).allowed).toBe(true)
    expect(limiter.check(view({ ip: '2001:db8:1:2::2' })).allowed).toBe(true)
    expect(limiter.check(view({ ip: '2001:db8:1:2:ffff:ffff:ffff:ffff' })).allowed).toBe(false)
    expect(limiter.check(view({ ip: '2001:db8:1:3::1' })).allowed).toBe(true)
  })

  it('skip(req) exempts; a throwing skip counts as false and warns once', () => {
    const { limiter, warnings } = httpLimiter({
      policy: { limit: 1, window: 60 },
      skip: (req) => {
        if (req.header('x-boom')) throw new Error('boom')
        return req.header('x-internal') === 'yes'
      },
    })
    expect(limiter.check(view({ headers: { 'x-internal': 'yes' } })).reason).toBe('exempt')
    expect(limiter.check(view({ headers: { 'x-boom': '1' } })).allowed).toBe(true)
    expect(limiter.check(view({ headers: { 'x-boom': '1' } })).allowed).toBe(false)
    expect(warnings.map((w) => w.code)).toEqual([WarningCode.CALLBACK_FAILED])
    expect(warnings[0]!.message).toMatch(/skip threw \(boom\)/)
  })

  it('peek(request) does not consume; reset(request) forgets the key the request maps to', () => {
    const { limiter } = httpLimiter({ policy: { limit: 2, window: 60 } })
    const r = view({ ip: '198.51.100.4' })
    limiter.check(r)
    expect(limiter.peek(r)).toMatchObject({ remaining: 1 })
    expect(limiter.peek(r)).toMatchObject({ remaining: 1 })
    limiter.check(r)
    expect(limiter.check(r).allowed).toBe(false)
    limiter.reset(r)
    expect(limiter.check(r)).toMatchObject({ allowed: true, remaining: 1 })
    expect(limiter.peek(view({ path: '/health' })).reason).toBe('exempt')
  })

  it('returns promises over an asynchronous store, also for exempt requests', async () => {
    const l = new RateLimiter({ store: asyncStore(), policy: { limit: 1, window: 60 } })
    const p = l.check(view())
    expect(p).toBeInstanceOf(Promise)
    await expect(p).resolves.toMatchObject({ allowed: true })
    await expect(l.check(view())).resolves.toMatchObject({ allowed: false, reason: 'limit' })
    const e = l.check(view({ path: '/health' }))
    expect(e).toBeInstanceOf(Promise)
    await expect(e).resolves.toMatchObject({ reason: 'exempt' })
  })

  it('reports the key and the request id to telemetry, exempt decisions included', () => {
    const events: DecisionEvent[] = []
    const { limiter } = httpLimiter({ policy: { limit: 5, window: 60 }, telemetry: { onCheck: (e) => events.push(e) } })
    limiter.check(view({ ip: '203.0.113.7', headers: { 'x-request-id': 'req-8f1' } }))
    limiter.check(view({ ip: '10.0.0.1' }))
    limiter.check(view({ ip: '203.0.113.7', headers: { 'x-request-id': 'two words\n' } }))
    expect(events[0]).toMatchObject({ key: 'ip:203.0.113.7', cost: 1, decision: { allowed: true }, requestId: 'req-8f1' })
    expect(events[0]!.durationMs).toBeGreaterThanOrEqual(0)
    expect(events[1]).toMatchObject({ key: 'ip:10.0.0.1', cost: 0, decision: { reason: 'exempt' } })
    expect(events[1]!.durationMs).toBeUndefined() // an exempt request reaches no store
    // No id, or one that could break a log line: a made-up one.
    expect(events[1]!.requestId).toMatch(/^[0-9a-f]{8}$/)
    expect(events[2]!.requestId).toMatch(/^[0-9a-f]{8}$/)
    expect(Object.keys(events[0]!).sort()).toEqual(['cost', 'decision', 'durationMs', 'key', 'requestId'])
  })
})

describe('key strategies', () => {
  it('user: by req.user.id, anonymous by address (onMissingIdentity ip)', () => {
    const { limiter } = httpLimiter({ policy: { limit: 1, window: 60, keyStrategy: 'user' } })
    expect(limiter.check(view({ ip: '203.0.113.1', user: { id: 7 } })).allowed).toBe(true)
    expect(limiter.check(view({ ip: '203.0.113.2', user: { id: 7 } })).allowed).toBe(false) // same user, other address
    expect(limiter.check(view({ ip: '203.0.113.1' })).allowed).toBe(true) // anonymous: by address
    expect(limiter.debugKey(view({ user: { id: 7 } })).key).toBe('user:7')
  })

  it('user: a custom userId resolver, and a throwing one treated as no identity', () => {
    const { limiter, warnings } = httpLimiter({
      policy: { limit: 5, window: 60, keyStrategy: 'user' },
      userId: (req) => {
        const h = req.header('x-user')
        if (h === 'boom') throw new Error('no session store')
        return h
      },
    })
    expect(limiter.debugKey(view({ headers: { 'x-user': 'u-9' } })).key).toBe('user:u-9')
    expect(limiter.debugKey(view({ headers: { 'x-user': 'boom' } })).key).toBe('ip:203.0.113.7')
    expect(warnings[0]).toMatchObject({ code: 'HALT_CALLBACK_FAILED' })
  })

  it('onMissingIdentity: shared puts anonymous requests in one bucket; allow lets them through', () => {
    const shared = httpLimiter({ policy: { limit: 1, window: 60, keyStrategy: 'user' }, onMissingIdentity: 'shared' }).limiter
    expect(shared.check(view({ ip: '203.0.113.1' })).allowed).toBe(true)
    expect(shared.check(view({ ip: '203.0.113.2' })).allowed).toBe(false)
    const allow = httpLimiter({ policy: { limit: 1, window: 60, keyStrategy: 'user' }, onMissingIdentity: 'allow' }).limiter
    expect(allow.check(view()).reason).toBe('exempt')
    expect(allow.check(view()).reason).toBe('exempt')
    expect(allow.check(view({ user: { id: 1 } })).allowed).toBe(true)
    expect(allow.check(view({ user: { id: 1 } })).allowed).toBe(false)
  })

  it('api_key: the raw key never appears in keys, explanations or telemetry', () => {
    const raw = 'sk_live_9f8e7d6c5b4a'
    const events: DecisionEvent[] = []
    const { limiter } = httpLimiter({ policy: { limit: 5, window: 60, keyStrategy: 'api_key' }, telemetry: { onCheck: (e) => events.push(e) } })
    const r = view({ headers: { 'x-api-key': raw } })
    const explained = limiter.debugKey(r)
    limiter.check(r)
    expect(explained.key).toMatch(/^apikey:[0-9a-f]{32}$/)
    expect(JSON.stringify(explained)).not.toContain(raw)
    expect(events[0]!.key).toBe(explained.key)
    expect(JSON.stringify(events[0])).not.toContain(raw)
    // Bearer and X-API-Key are the same identity; another key is another identity.
    expect(limiter.debugKey(view({ headers: { authorization: `Bearer ${raw}` } })).key).toBe(explained.key)
    expect(limiter.debugKey(view({ headers: { 'x-api-key': `${raw}x` } })).key).not.toBe(explained.key)
  })

  it('api_key: the default secret is random per process, a configured one is stable', () => {
    const a = httpLimiter({ policy: { limit: 5, window: 60, keyStrategy: 'api_key' } }).limiter
    const b = httpLimiter({ policy: { limit: 5, window: 60, keyStrategy: 'api_key' } }).limiter
    const r = view({ headers: { 'x-api-key': 'k1' } })
    expect(a.debugKey(r).key).toBe(b.debugKey(r).key) // one process, one default secret
    const s1 = httpLimiter({ policy: { limit: 5, window: 60, keyStrategy: 'api_key' }, apiKeySecret: 'a'.repeat(32) }).limiter
    const s2 = httpLimiter({ policy: { limit: 5, window: 60, keyStrategy: 'api_key' }, apiKeySecret: new TextEncoder().encode('a'.repeat(32)) }).limiter
    expect(s1.debugKey(r).key).toBe(s2.debugKey(r).key)
    expect(s1.debugKey(r).key).not.toBe(a.debugKey(r).key)
  })

  it('api_key on a shared store: a static policy needs apiKeySecret; a resolved one warns', () => {
    const e = configError(() => new RateLimiter({ store: asyncStore(), policy: { limit: 5, window: 60, keyStrategy: 'api_key' } }))
    expect(e.code).toBe('HALT_API_KEY_SECRET_REQUIRED')
    expect(e.message).toMatch(/apiKeySecret: process\.env\.HALT_API_KEY_SECRET/)
    expect(() => new RateLimiter({ store: asyncStore(), policy: { limit: 5, window: 60, keyStrategy: 'api_key' }, apiKeySecret: 'x'.repeat(16) })).not.toThrow()
    const warnings: string[] = []
    const dyn = new RateLimiter({
      store: asyncStore(),
      policy: () => ({ name: 'k', limit: 5, window: 60, keyStrategy: 'api_key' }),
      defaultPolicy: { limit: 5, window: 60 },
      onWarning: (w) => warnings.push(w.code),
    })
    expect(dyn.debugKey(view({ headers: { 'x-api-key': 'k' } })).key).toMatch(/^apikey:/)
    expect(warnings).toEqual(['HALT_API_KEY_SECRET_NOT_SHARED'])
  })

  it('custom: keyExtractor implies the strategy; no value falls back; a throw warns', () => {
    const { limiter, warnings } = httpLimiter({
      policy: { limit: 5, window: 60 },
      keyExtractor: (req) => {
        const t = req.header('x-tenant')
        if (t === 'boom') throw new Error('lookup failed')
        return t && `tenant:${t}`
      },
    })
    expect(limiter.debugKey(view({ headers: { 'x-tenant': 'acme' } }))).toMatchObject({ key: 'tenant:acme', strategy: 'custom' })
    expect(limiter.debugKey(view()).key).toBe('ip:203.0.113.7')
    expect(limiter.debugKey(view({ headers: { 'x-tenant': 'boom' } })).key).toBe('ip:203.0.113.7')
    expect(limiter.debugKey(view({ headers: { 'x-tenant': 'a b' } })).key).toMatch(/^custom#[0-9a-f]{32}$/)
    expect(warnings.map((w) => w.code)).toEqual(['HALT_CALLBACK_FAILED'])
  })

  it('custom strategy without keyExtractor is a configuration error', () => {
    expect(configError(() => new RateLimiter({ policy: { limit: 5, window: 60, keyStrategy: 'custom' } })).code).toBe('HALT_MISSING_KEY_EXTRACTOR')
  })
})

describe('dynamic policy and cost', () => {
  const plans: Record<string, Policy> = { pro: presets.PLAN_PRO, free: presets.PLAN_FREE }

  it('picks the policy per request; plans keep separate counters; string keys use defaultPolicy', () => {
    const { limiter } = httpLimiter({
      policy: (req) => plans[req.header('x-plan') ?? ''],
      defaultPolicy: { name: 'anon', limit: 1, window: 60 },
    })
    const pro = view({ headers: { 'x-plan': 'pro' } })
    expect(limiter.check(pro)).toMatchObject({ policy: 'plan_pro', limit: 2000, remaining: 1999 })
    expect(limiter.check(view({ headers: { 'x-plan': 'free' } }))).toMatchObject({ policy: 'plan_free', remaining: 99 })
    expect(limiter.check(view())).toMatchObject({ policy: 'anon', remaining: 0 })
    expect(limiter.check(view())).toMatchObject({ policy: 'anon', allowed: false })
    expect(limiter.check('ip:203.0.113.7')).toMatchObject({ policy: 'anon', allowed: false })
    expect(limiter.stats().activeKeys).toBe(3)
    limiter.clear()
    expect(limiter.stats().activeKeys).toBe(0)
  })

  it('compiles each distinct policy once: fresh objects with the same content share state', () => {
    const { limiter } = httpLimiter({ policy: () => ({ name: 'fresh', limit: 2, window: 60 }), defaultPolicy: { limit: 1, window: 60 } })
    expect(limiter.check(view()).remaining).toBe(1)
    expect(limiter.check(view()).remaining).toBe(0)
    expect(limiter.check(view()).allowed).toBe(false)
  })

  it('a resolver that throws or returns a bad policy falls back to defaultPolicy (warned once), never a 500', () => {
    const { limiter, warnings } = httpLimiter({
      policy: (req) => {
        const p = req.header('x-plan')
        if (p === 'boom') throw new Error('db down')
        if (p === 'bad') return { name: 'bad', limit: -5, window: 60 }
        if (p === 'weird') return 42 as unknown as Policy
        return undefined
      },
      defaultPolicy: { name: 'fallback', limit: 10, window: 60 },
    })
    for (const p of ['boom', 'bad', 'bad', 'weird', 'none'])
      expect(limiter.check(view({ headers: { 'x-plan': p } }))).toMatchObject({ policy: 'fallback', allowed: true })
    expect(warnings.map((w) => w.code)).toEqual(['HALT_POLICY_RESOLVER_FAILED'])
    expect(warnings[0]!.message).toMatch(/threw \(db down\)/)
    expect(limiter.debugKey(view({ headers: { 'x-plan': 'bad' } })).policy).toBe('fallback')
  })

  it('the ietf headers carry the window of the policy that decided', () => {
    const { limiter } = httpLimiter({ policy: () => ({ name: 'hourly', limit: 10, window: '1h' }), defaultPolicy: { name: 'd', limit: 1, window: 60 } })
    const d = limiter.check(view())
    const h: Record<string, string> = {}
    limiter.writeHeaders(d, 'ietf', h, (o, n, v) => {
      o[n] = v
    })
    expect(h).toEqual({ 'RateLimit-Policy': '"hourly";q=10;w=3600', RateLimit: `"hourly";r=9;t=360` })
  })

  it('a policy function needs defaultPolicy; defaultPolicy needs a policy function', () => {
    expect(configError(() => new RateLimiter({ policy: () => presets.PLAN_PRO })).code).toBe('HALT_MISSING_DEFAULT_POLICY')
    expect(configError(() => new RateLimiter({ policy: presets.PLAN_PRO, defaultPolicy: presets.PLAN_FREE })).code).toBe('HALT_INVALID_OPTIONS')
  })

  it('cost: a number or a function of the request; a bad result uses the policy cost and warns once', () => {
    const { limiter, warnings } = httpLimiter({
      policy: { limit: 10, window: 60 },
      cost: (req) => {
        const c = req.header('x-cost')
        if (c === 'boom') throw new Error('nope')
        return Number(c)
      },
    })
    expect(limiter.check(view({ headers: { 'x-cost': '4' } })).remaining).toBe(6)
    for (const c of ['NaN', '-1', 'Infinity', 'boom', 'abc']) expect(limiter.check(view({ headers: { 'x-cost': c } })).allowed).toBe(true)
    expect(limiter.check(view()).remaining).toBe(0)
    expect(limiter.check(view({ headers: { 'x-cost': '11' } }))).toMatchObject({ allowed: false, reason: 'cost_exceeds_capacity' })
    expect(warnings.map((w) => w.code)).toEqual(['HALT_INVALID_REQUEST_COST'])
    const fixed = httpLimiter({ policy: { limit: 10, window: 60 }, cost: 5 }).limiter
    expect(fixed.check(view()).remaining).toBe(5)
    expect(fixed.check(view(), { cost: 1 }).remaining).toBe(4)
    expect(configError(() => new RateLimiter({ policy: { limit: 10, window: 60 }, cost: 11 })).code).toBe('HALT_COST_EXCEEDS_CAPACITY')
    expect(configError(() => new RateLimiter({ policy: { limit: 10, window: 60 }, cost: Number.NaN })).code).toBe('HALT_INVALID_COST')
  })

  it('per-request algorithm overrides apply to resolved policies too', () => {
    const { limiter } = httpLimiter({ policy: () => ({ name: 'p', limit: 1, window: 60 }), defaultPolicy: { limit: 1, window: 60 } })
    expect(limiter.check(view()).allowed).toBe(true)
    expect(limiter.check(view()).allowed).toBe(false)
    expect(limiter.check(view(), { algorithm: 'fixed_window' }).allowed).toBe(true)
    limiter.reset(view())
    expect(limiter.check(view()).allowed).toBe(true)
    expect(limiter.check(view(), { algorithm: 'fixed_window' }).allowed).toBe(true)
  })
})

describe('warnings', () => {
  it('warns once, loudly and with the fix, when a private peer sends X-Forwarded-For and no proxy is trusted', () => {
    const { limiter, warnings } = httpLimiter()
    for (let i = 0; i < 3; i++) expect(limiter.check(view({ ip: '10.0.3.4', headers: { 'x-forwarded-for': `203.0.113.${i}` } })).reason).toBe('exempt')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!.code).toBe('HALT_UNCONFIGURED_PROXY')
    expect(warnings[0]!.message).toMatch(/NOTHING IS LIMITED.*trustedProxies: \['10\.0\.3\.4'\]/)
  })

  it('also for Forwarded, says the other consequence without private exemption, and can be turned off', () => {
    const a = httpLimiter({ exemptPrivateIps: false })
    a.limiter.check(view({ ip: '192.168.0.2', headers: { forwarded: 'for=203.0.113.1' } }))
    expect(a.warnings[0]!.message).toMatch(/carries Forwarded.*every client shares that one limit/)
    const off = httpLimiter({ validations: { HALT_UNCONFIGURED_PROXY: false } })
    off.limiter.check(view({ ip: '10.0.0.1', headers: { 'x-forwarded-for': '1.1.1.1' } }))
    const none = httpLimiter({ validations: false })
    none.limiter.check(view({ ip: '10.0.0.1', headers: { 'x-forwarded-for': '1.1.1.1' } }))
    expect([...off.warnings, ...none.warnings]).toEqual([])
  })

  it('does not warn for public peers, or when proxies are trusted', () => {
    const a = httpLimiter()
    a.limiter.check(view({ ip: '203.0.113.5', headers: { 'x-forwarded-for': '1.1.1.1' } }))
    const b = httpLimiter({ trustedProxies: ['10.0.0.0/8'] })
    b.limiter.check(view({ ip: '10.0.0.1', headers: { 'x-forwarded-for': '1.1.1.1' } }))
    b.limiter.check(view({ ip: '192.168.0.1', headers: { 'x-forwarded-for': '1.1.1.1' } }))
    expect([...a.warnings, ...b.warnings]).toEqual([])
  })

  it('warns once when requests come without an address; they share ip:unknown', () => {
    const { limiter, warnings } = httpLimiter({ policy: { limit: 1, window: 60 } })
    expect(limiter.check(view({ ip: undefined })).allowed).toBe(true)
    expect(limiter.check(view({ ip: undefined })).allowed).toBe(false)
    expect(limiter.debugKey(view({ ip: undefined })).key).toBe('ip:unknown')
    expect(warnings.map((w) => w.code)).toEqual(['HALT_NO_CLIENT_ADDRESS'])
  })

  it('a throwing onWarning does not break the request', () => {
    const l = new RateLimiter({
      policy: { limit: 1, window: 60 },
      onWarning: () => {
        throw new Error('logger down')
      },
    })
    expect(l.check(view({ ip: undefined })).allowed).toBe(true)
  })
})

describe('configuration errors at construction, with a stable code and the fix', () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'a trusted proxy that is no address',
      { trustedProxies: ['10.0.0.0/8', 'proxy.internal'] },
      'HALT_INVALID_TRUSTED_PROXY',
      /'proxy\.internal'.*'10\.0\.0\.0\/8'/,
    ],
    ['trustedProxies not an array', { trustedProxies: '10.0.0.0/8' }, 'HALT_INVALID_TRUSTED_PROXY', /must be an array/],
    ['trusting every address', { trustedProxies: ['0.0.0.0/0'] }, 'HALT_TRUST_ALL_PROXIES', /any client could name its own address/],
    ['trusting every IPv6 address', { trustedProxies: ['::/0'] }, 'HALT_TRUST_ALL_PROXIES', /trusts every address/],
    ['a bad proxy header', { proxyHeader: 'x forwarded' }, 'HALT_INVALID_PROXY_HEADER', /header name/],
    ['a non-canonical exempt path', { exemptions: ['/a/../b'] }, 'HALT_INVALID_EXEMPTION', /not canonical/],
    ['an exemption that is neither', { exemptions: ['health'] }, 'HALT_INVALID_EXEMPTION', /neither a path/],
    ['an IPv6 prefix of 0', { ipv6Prefix: 0 }, 'HALT_INVALID_IPV6_PREFIX', /1 to 128/],
    ['an IPv6 prefix of 64.5', { ipv6Prefix: 64.5 }, 'HALT_INVALID_IPV6_PREFIX', /whole number/],
    ['an unknown onMissingIdentity', { onMissingIdentity: 'reject' }, 'HALT_INVALID_ON_MISSING_IDENTITY', /'ip', 'shared' or 'allow'/],
    ['a short apiKeySecret', { apiKeySecret: 'short' }, 'HALT_INVALID_API_KEY_SECRET', /at least 16 bytes/],
    ['skip not a function', { skip: true }, 'HALT_INVALID_CALLBACK', /skip must be a function/],
    ['keyExtractor not a function', { keyExtractor: 'x-tenant' }, 'HALT_INVALID_CALLBACK', /keyExtractor must be a function/],
    ['exemptPrivateIps not a boolean', { exemptPrivateIps: 'no' }, 'HALT_INVALID_OPTIONS', /true or false/],
    ['an unknown validation', { validations: { HALT_NOPE: false } }, 'HALT_INVALID_VALIDATIONS', /unknown warning code 'HALT_NOPE'/],
    ['onWarning not a function', { onWarning: 'console' }, 'HALT_INVALID_CALLBACK', /onWarning must be a function/],
  ]
  for (const [what, options, code, message] of cases) {
    it(what, () => {
      const e = configError(() => new RateLimiter({ policy: { limit: 1, window: 1 }, ...options }))
      expect(e.code).toBe(code)
      expect(e.message).toMatch(message)
    })
  }

  it('accepts named ranges and every documented form', () => {
    const { limiter } = httpLimiter({
      trustedProxies: ['loopback', 'private', '2001:db8::/32', '198.51.100.7'],
      exemptions: ['/status', '/internal/*', '203.0.113.0/24', '::1'],
    })
    expect(limiter.debugKey(view({ path: '/internal/x' })).exempt).toBe('path')
    expect(T0).toBeGreaterThan(0)
  })
})
