// One test body for every adapter: each serves the same three routes over real HTTP on loopback, and the same assertions run.

import { afterEach, describe, expect, it } from 'vitest'
import { type AdapterOptions, type Decision, type HttpLimiter, InMemoryStore, RateLimiter, type RateLimiterOptions, type Store } from '../../src/index.js'
import { asyncStore } from '../support/async-store.js'
import { fakeClock } from '../support/clock.js'

export const T0 = 1_700_000_000_000

/**
 * What every adapter test app serves:
 * - GET /api/hello: the app-wide limiter (`global`)
 * - GET /api/strict: `global` and the route's `strict` limiter
 * - GET /health: the app-wide limiter (exempt by default)
 * A request header `x-user: <id>` sets the authenticated user (`{ id }`) before the limiters run.
 * With `customReject`, rejections go through the adapter's onLimited hook, answering 418 `slow down`.
 */
export interface AppSetup {
  global: HttpLimiter
  strict: HttpLimiter
  options: AdapterOptions
  customReject: boolean
}

export interface Served {
  url: string
  close(): Promise<void>
}

export type Serve = (setup: AppSetup) => Promise<Served>

export { asyncStore }

const BODY = (s: number) => `{"error":"rate_limit_exceeded","message":"Too many requests. Please try again later.","retry_after":${s}}`

export function adapterContract(name: string, serve: Serve): void {
  describe(`${name}: the adapter contract over real HTTP`, () => {
    let served: Served | undefined
    afterEach(async () => {
      await served?.close()
      served = undefined
    })

    function limiters(async = false, extra: Partial<RateLimiterOptions> = {}) {
      const clock = fakeClock(T0)
      const make = (policy: RateLimiterOptions['policy']) =>
        new RateLimiter({
          store: async ? asyncStore() : new InMemoryStore({ sweepInterval: 0 }),
          policy,
          clock,
          // Test clients come from loopback: trust it and name the client in X-Forwarded-For.
          trustedProxies: ['loopback'],
          onWarning: () => {},
          ...extra,
        })
      return {
        global: make({ name: 'global', limit: 10, window: 60 }) as HttpLimiter,
        strict: make({ name: 'strict', limit: 2, window: 60 }) as HttpLimiter,
        clock,
      }
    }

    async function start(setup: Partial<AppSetup> & Pick<AppSetup, 'global' | 'strict'>): Promise<string> {
      served = await serve({ options: {}, customReject: false, ...setup })
      return served.url
    }

    const from = (ip: string, more: Record<string, string> = {}) => ({ headers: { 'x-forwarded-for': ip, ...more } })

    for (const async of [false, true]) {
      const store = async ? 'an asynchronous store' : 'the in-memory store'
      it(`admits with RateLimit headers, then answers 429 with Retry-After and the JSON body (${store})`, async () => {
        const url = await start(limiters(async))
        const first = await fetch(`${url}/api/hello`, from('203.0.113.7'))
        expect(first.status).toBe(200)
        expect(await first.text()).toBe('hello')
        expect(first.headers.get('ratelimit-limit')).toBe('10')
        expect(first.headers.get('ratelimit-remaining')).toBe('9')
        expect(first.headers.get('ratelimit-reset')).toBe(String(T0 / 1000 + 6))
        expect(first.headers.get('retry-after')).toBeNull()
        for (let i = 0; i < 9; i++) expect((await fetch(`${url}/api/hello`, from('203.0.113.7'))).status).toBe(200)
        const limited = await fetch(`${url}/api/hello`, from('203.0.113.7'))
        expect(limited.status).toBe(429)
        expect(limited.headers.get('retry-after')).toBe('6')
        expect(limited.headers.get('ratelimit-remaining')).toBe('0')
        expect(limited.headers.get('content-type')).toMatch(/^application\/json/)
        expect(await limited.text()).toBe(BODY(6))
        // Another client is not affected.
        expect((await fetch(`${url}/api/hello`, from('198.51.100.1'))).status).toBe(200)
      })

      it(`applies the app-wide and the route limiter; the headers describe the stricter (${store})`, async () => {
        const l = limiters(async)
        const url = await start(l)
        const a = await fetch(`${url}/api/strict`, from('203.0.113.7'))
        expect(a.status).toBe(200)
        expect(await a.text()).toBe('strict')
        expect([a.headers.get('ratelimit-limit'), a.headers.get('ratelimit-remaining')]).toEqual(['2', '1'])
        expect((await fetch(`${url}/api/strict`, from('203.0.113.7'))).headers.get('ratelimit-remaining')).toBe('0')
        const c = await fetch(`${url}/api/strict`, from('203.0.113.7'))
        expect(c.status).toBe(429)
        expect(c.headers.get('ratelimit-limit')).toBe('2')
        expect(c.headers.get('retry-after')).toBe('30')
        // The app-wide limiter counted all three.
        const h = await fetch(`${url}/api/hello`, from('203.0.113.7'))
        expect([h.headers.get('ratelimit-limit'), h.headers.get('ratelimit-remaining')]).toEqual(['10', '6'])
      })
    }

    it('exempts health checks (no headers, never limited) but not look-alike paths', async () => {
      const url = await start(limiters())
      for (let i = 0; i < 15; i++) {
        const r = await fetch(`${url}/health`, from('203.0.113.7'))
        expect(r.status).toBe(200)
        expect(r.headers.get('ratelimit-limit')).toBeNull()
      }
      const r = await fetch(`${url}/health;x`, from('203.0.113.7'))
      expect(r.headers.get('ratelimit-limit')).toBe('10')
    })

    it('keys clients by the address trusted proxies report, and ignores X-Forwarded-For from an untrusted peer', async () => {
      const trusting = limiters()
      let url = await start(trusting)
      for (let i = 0; i < 10; i++) await fetch(`${url}/api/hello`, from('203.0.113.7'))
      expect((await fetch(`${url}/api/hello`, from('203.0.113.7'))).status).toBe(429)
      expect((await fetch(`${url}/api/hello`, from('203.0.113.8'))).status).toBe(200)
      await served?.close()
      // No trusted proxy: the loopback peer is the client whatever the header says (loopback is not exempted here).
      const strictPeer = limiters(false, { trustedProxies: undefined, exemptPrivateIps: false })
      url = await start(strictPeer)
      for (let i = 0; i < 10; i++) expect((await fetch(`${url}/api/hello`, from(`198.51.100.${i}`))).status).toBe(200)
      expect((await fetch(`${url}/api/hello`, from('198.51.100.99'))).status).toBe(429)
    })

    it('exempts loopback clients by default', async () => {
      const url = await start(limiters(false, { trustedProxies: undefined }))
      for (let i = 0; i < 12; i++) {
        const r = await fetch(`${url}/api/hello`)
        expect(r.status).toBe(200)
        expect(r.headers.get('ratelimit-limit')).toBeNull()
      }
    })

    it('keys by the authenticated user under the user strategy', async () => {
      const clock = fakeClock(T0)
      const make = (name: string, limit: number) =>
        new RateLimiter({
          policy: { name, limit, window: 60, keyStrategy: 'user' },
          clock,
          trustedProxies: ['loopback'],
          store: new InMemoryStore({ sweepInterval: 0 }),
        })
      const url = await start({ global: make('per_user', 2), strict: make('s', 1) })
      const as = (user: string, ip: string) => from(ip, { 'x-user': user })
      expect((await fetch(`${url}/api/hello`, as('ada', '203.0.113.1'))).status).toBe(200)
      expect((await fetch(`${url}/api/hello`, as('ada', '203.0.113.2'))).status).toBe(200)
      expect((await fetch(`${url}/api/hello`, as('ada', '203.0.113.3'))).status).toBe(429)
      expect((await fetch(`${url}/api/hello`, as('grace', '203.0.113.3'))).status).toBe(200)
    })

    for (const [format, expected] of [
      ['ietf', { 'ratelimit-policy': '"global";q=10;w=60', ratelimit: '"global";r=9;t=6' }],
      ['legacy', { 'x-ratelimit-limit': '10', 'x-ratelimit-remaining': '9', 'x-ratelimit-reset': String(T0 / 1000 + 6) }],
      ['none', {}],
    ] as const) {
      it(`sends ${format} headers when asked`, async () => {
        const url = await start({ ...limiters(), options: { headers: format } })
        const r = await fetch(`${url}/api/hello`, from('203.0.113.7'))
        const got: Record<string, string> = {}
        r.headers.forEach((v, k) => {
          if (k.includes('ratelimit')) got[k] = v
        })
        expect(got).toEqual(expected)
        for (let i = 0; i < 9; i++) await fetch(`${url}/api/hello`, from('203.0.113.7'))
        const limited = await fetch(`${url}/api/hello`, from('203.0.113.7'))
        expect(limited.status).toBe(429)
        expect(limited.headers.get('retry-after')).toBe('6')
      })
    }

    it('lets a custom handler answer rejections, with the headers already set', async () => {
      const url = await start({ ...limiters(), customReject: true })
      for (let i = 0; i < 2; i++) await fetch(`${url}/api/strict`, from('203.0.113.7'))
      const r = await fetch(`${url}/api/strict`, from('203.0.113.7'))
      expect(r.status).toBe(418)
      expect(await r.text()).toBe('slow down')
      expect(r.headers.get('retry-after')).toBe('30')
      expect(r.headers.get('ratelimit-limit')).toBe('2')
    })

    it('waits out a shaping delay before passing the request on', async () => {
      // Leaky bucket in shaping mode, 20 per second: the second request of a burst leaves 50 ms after the first.
      const clock = fakeClock(T0)
      const shaping = new RateLimiter({
        store: new InMemoryStore({ sweepInterval: 0 }),
        policy: { name: 'shaped', limit: 20, window: 1, burst: 5, algorithm: 'leaky_bucket', leakyMode: 'shaping' },
        clock,
        trustedProxies: ['loopback'],
      })
      const url = await start({ global: shaping, strict: limiters().strict })
      expect((await fetch(`${url}/api/hello`, from('203.0.113.7'))).status).toBe(200)
      const t1 = performance.now()
      const second = await fetch(`${url}/api/hello`, from('203.0.113.7'))
      const t2 = performance.now()
      expect(second.status).toBe(200)
      expect(t2 - t1).toBeGreaterThanOrEqual(45) // without the wait it takes a millisecond or two
    })

    it('answers 503 when the store is down and the limiter fails closed', async () => {
      const broken: Store = {
        synchronous: false,
        consume: () => Promise.reject(new Error('connection refused')),
        peek: () => Promise.reject(new Error('connection refused')),
        reset: async () => {},
        clear: async () => {},
      }
      const l = new RateLimiter({ store: broken, policy: { name: 'global', limit: 10, window: 60 }, onStoreError: 'closed', trustedProxies: ['loopback'] })
      const url = await start({ global: l, strict: limiters().strict })
      const r = await fetch(`${url}/api/hello`, from('203.0.113.7'))
      expect(r.status).toBe(503)
      expect(JSON.parse(await r.text())).toMatchObject({ error: 'rate_limiter_unavailable' })
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    })
  })
}

/** The handler every adapter's custom rejection hook calls, for the contract's assertions. */
export const CUSTOM_REJECTION = { status: 418, body: 'slow down' }
export type { Decision }
