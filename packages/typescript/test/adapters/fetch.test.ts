// halt/fetch: withHalt and haltMiddleware as plain Fetch handlers, served over real HTTP by @hono/node-server on loopback.
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { describe, expect, it } from 'vitest'
import { haltMiddleware, ipFromHeader, runtimeIp, withHalt } from '../../src/adapters/fetch/index.js'
import { InMemoryStore, RateLimiter } from '../../src/index.js'
import { adapterContract, CUSTOM_REJECTION, type Served } from './contract.js'

type Handler = (request: Request, context: unknown) => Response | Promise<Response>

async function serveFetch(fetch: Handler): Promise<Served> {
  const server = await new Promise<ReturnType<typeof serve>>((ok) => {
    const s = serve({ fetch, port: 0, hostname: '127.0.0.1' }, () => ok(s))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  }
}

adapterContract('fetch', async ({ global, strict, options, customReject }) => {
  const opts = {
    ...options,
    getUser: (req: Request) => (req.headers.get('x-user') ? { id: req.headers.get('x-user') } : undefined),
    onLimited: customReject ? () => new Response(CUSTOM_REJECTION.body, { status: CUSTOM_REJECTION.status }) : undefined,
  }
  const hello = withHalt(global, () => new Response('hello'), opts)
  const strictRoute = withHalt(
    global,
    withHalt(strict, () => new Response('strict'), opts),
    opts,
  )
  const ok = withHalt(global, () => new Response('ok'), opts)
  return serveFetch((req, env) => {
    const path = new URL(req.url).pathname
    return (path === '/api/hello' ? hello : path === '/api/strict' ? strictRoute : ok)(req, env)
  })
})

describe('fetch specifics', () => {
  const limiter = () =>
    new RateLimiter({ policy: { name: 'f', limit: 1, window: 60 }, exemptPrivateIps: false, store: new InMemoryStore({ sweepInterval: 0 }) })

  it('haltMiddleware is a gate: undefined to proceed (synchronously on the in-memory store), else the 429', async () => {
    const limit = haltMiddleware(limiter())
    const served = await serveFetch(async (req, env) => (await limit(req, env)) ?? new Response('through'))
    try {
      const a = await fetch(`${served.url}/x`)
      expect(await a.text()).toBe('through')
      const b = await fetch(`${served.url}/x`)
      expect(b.status).toBe(429)
      expect(b.headers.get('retry-after')).toBe('60')
    } finally {
      await served.close()
    }
    const r = limit(new Request('http://h/x'), { remoteAddr: { hostname: '198.51.100.1' } })
    expect(r).toBeUndefined()
  })

  it('finds the peer from Deno, Bun and @hono/node-server contexts, and reads platform headers with ipFromHeader', () => {
    const req = new Request('http://h/', { headers: { 'x-real-ip': '203.0.113.9', 'x-forwarded-for': '1.1.1.1, 203.0.113.10:443' } })
    expect(runtimeIp(req, { remoteAddr: { hostname: '203.0.113.1', port: 1 } })).toBe('203.0.113.1')
    expect(runtimeIp(req, { requestIP: () => ({ address: '203.0.113.2' }) })).toBe('203.0.113.2')
    expect(runtimeIp(req, { incoming: { socket: { remoteAddress: '203.0.113.3' } } })).toBe('203.0.113.3')
    expect(runtimeIp(req, undefined)).toBeUndefined()
    expect(
      runtimeIp(req, {
        get remoteAddr() {
          throw new Error('boom')
        },
      }),
    ).toBeUndefined()
    expect(ipFromHeader('X-Real-IP')(req)).toBe('203.0.113.9')
    expect(ipFromHeader('x-forwarded-for')(req)).toBe('203.0.113.10')
    expect(ipFromHeader('cf-connecting-ip')(req)).toBeUndefined()
  })

  it('adds headers to immutable responses by copying them', async () => {
    const h = withHalt(limiter(), () => Response.redirect('http://h/elsewhere', 302), { getIp: () => '203.0.113.5' })
    const r = await h(new Request('http://h/'), undefined)
    expect(r.status).toBe(302)
    expect(r.headers.get('location')).toBe('http://h/elsewhere')
    expect(r.headers.get('ratelimit-limit')).toBe('1')
  })
})
