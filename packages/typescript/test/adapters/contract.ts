// One test body for every adapter: each serves the same three routes over real HTTP on loopback, and the same assertions run.

import { connect } from 'node:net'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { type AdapterOptions, type Decision, type HttpLimiter, InMemoryStore, RateLimiter, type RateLimiterOptions, type Store } from '../../src/index.js'
import { asyncStore } from '../support/async-store.js'
import { fakeClock } from '../support/clock.js'
import { EXACT, hostile, trickPath } from '../support/hostile.js'

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

    it('hostile requests over the wire: never a 5xx, and no request is served unlimited unless it is a health check', async () => {
      // Raw bytes on a socket, so that nothing on the client side cleans the request up first. Loopback is trusted and
      // private addresses are not exempt here, so every request the app serves must carry RateLimit headers, except
      // health checks: a request may skip the limiter only if even a URL parser that resolves dot segments and
      // backslashes (the most normalising reading a router could take) sees a health-check path.
      const clock = fakeClock(T0)
      const wide = (name: string) =>
        new RateLimiter({
          store: new InMemoryStore({ sweepInterval: 0 }),
          policy: { name, limit: 1_000_000, window: 60 },
          clock,
          trustedProxies: ['loopback'],
          exemptPrivateIps: false,
          onWarning: () => {},
        }) as HttpLimiter
      const url = new URL(await start({ global: wide('global'), strict: wide('strict') }))
      const headerName = fc.constantFrom('X-Forwarded-For', 'Forwarded', 'X-Real-IP', 'X-API-Key', 'Authorization', 'X-User')
      // Mostly values a server's HTTP parser lets through (no CR, LF or NUL, under its 16 KiB header limit), so that they
      // reach the adapter; some raw ones too, to see the parser's own answers.
      const value = fc.oneof(
        { weight: 6, arbitrary: hostile.map((h) => h.replace(/[\r\n\0]/g, '').slice(0, 8_000)) },
        { weight: 1, arbitrary: hostile },
        { weight: 1, arbitrary: fc.constant(`Bearer ${'k'.repeat(8_000)}`) },
      )
      const request = fc.record({
        path: fc.oneof(
          trickPath,
          trickPath.map((p) => p.replace(/^\/[a-z]+/, '/api/hello')),
          hostile.map((h) => `/api/hello${h}`),
        ),
        headers: fc.array(fc.tuple(headerName, value), { maxLength: 6 }),
      })
      await fc.assert(
        fc.asyncProperty(request, async ({ path, headers }) => {
          const lines = headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')
          const raw = await rawHttp(url, `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n${lines}${lines ? '\r\n' : ''}\r\n`)
          const { status, headers: got, body } = parseResponse(raw)
          expect(status, raw.slice(0, 200)).toBeGreaterThanOrEqual(200)
          expect(status, raw.slice(0, 200)).toBeLessThan(500)
          const limited = got.has('ratelimit-limit')
          if (body === 'hello' || body === 'strict') expect(limited, `${path} was served without the limiter`).toBe(true)
          if (status === 200 && !limited) {
            let resolved: string | undefined
            try {
              resolved = new URL(path, 'http://x').pathname
            } catch {}
            expect(EXACT.has(resolved ?? '') || EXACT.has(path.split('?')[0] as string), `${path} was served unlimited`).toBe(true)
          }
        }),
        { numRuns: 1000 },
      )
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

/** Send `text` as is on a new connection and read until the server closes it (or 5 s pass). */
function rawHttp(url: URL, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname)
    const chunks: Buffer[] = []
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer within 5 s to ${JSON.stringify(text.slice(0, 200))}`)))
    socket.on('data', (c) => chunks.push(c))
    socket.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(e)))
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')))
    socket.end(Buffer.from(text, 'utf8'))
  })
}

/** Status, lower-cased header names and the (unchunked) body of the first response in `raw`. */
function parseResponse(raw: string): { status: number; headers: Map<string, string>; body: string } {
  const end = raw.indexOf('\r\n\r\n')
  const head = (end < 0 ? raw : raw.slice(0, end)).split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0)
  const headers = new Map<string, string>()
  for (const line of head.slice(1)) {
    const i = line.indexOf(':')
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim())
  }
  let body = end < 0 ? '' : raw.slice(end + 4)
  if (headers.get('transfer-encoding') === 'chunked') body = body.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '')
  return { status, headers, body }
}

/** The handler every adapter's custom rejection hook calls, for the contract's assertions. */
export const CUSTOM_REJECTION = { status: 418, body: 'slow down' }
export type { Decision }
