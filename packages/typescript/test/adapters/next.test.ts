// halt/next: the route-handler wrapper and the middleware helper with real Web Requests (and NextRequest / NextResponse),
// the route handler also over real HTTP.
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { NextRequest, NextResponse } from 'next/server.js'
import { describe, expect, it } from 'vitest'
import { haltMiddleware, ipFromHeader, withHalt } from '../../src/adapters/next/index.js'
import { type HaltWarning, InMemoryStore, RateLimiter } from '../../src/index.js'
import { adapterContract, CUSTOM_REJECTION } from './contract.js'

type Ctx = { params: Promise<Record<string, string>>; env: { incoming: { socket: { remoteAddress?: string } } } }

adapterContract('next (route handlers)', async ({ global, strict, options, customReject }) => {
  const opts = {
    ...options,
    // In production: ipFromHeader('x-real-ip') on Vercel. Here the test server hands over the socket's address.
    getIp: (_req: Request, ctx: Ctx) => ctx.env.incoming.socket.remoteAddress,
    getUser: (req: Request) => (req.headers.get('x-user') ? { id: req.headers.get('x-user') } : undefined),
    onLimited: customReject ? () => new Response(CUSTOM_REJECTION.body, { status: CUSTOM_REJECTION.status }) : undefined,
  }
  const GET_hello = withHalt(global, () => new Response('hello'), opts)
  const GET_strict = withHalt(
    global,
    withHalt(strict, () => new Response('strict'), opts),
    opts,
  )
  const GET_ok = withHalt(global, () => new Response('ok'), opts)
  const server = await new Promise<ReturnType<typeof serve>>((ok) => {
    const s = serve(
      {
        fetch: (req, env) => {
          // @hono/node-server hands over a lightweight Request; Next hands a NextRequest to route handlers.
          const path = new URL(req.url).pathname
          const ctx: Ctx = { params: Promise.resolve({}), env: env as Ctx['env'] }
          return (path === '/api/hello' ? GET_hello : path === '/api/strict' ? GET_strict : GET_ok)(
            new NextRequest(req.url, { method: req.method, headers: req.headers }),
            ctx,
          )
        },
        port: 0,
        hostname: '127.0.0.1',
      },
      () => ok(s),
    )
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  }
})

describe('next: middleware.ts helper', () => {
  const limiter = (warnings: HaltWarning[] = []) =>
    new RateLimiter({ policy: { name: 'mw', limit: 2, window: 60 }, store: new InMemoryStore({ sweepInterval: 0 }), onWarning: (w) => warnings.push(w) })
  const request = (ip: string, path = '/api/items') => new NextRequest(`https://example.com${path}`, { headers: { 'x-real-ip': ip } })

  it('continues with NextResponse.next() carrying the headers, then answers 429', async () => {
    const middleware = haltMiddleware(limiter(), { getIp: ipFromHeader('x-real-ip'), next: () => NextResponse.next() })
    const a = (await middleware(request('203.0.113.7'))) as Response
    expect(a.headers.get('x-middleware-next')).toBe('1')
    expect(a.headers.get('ratelimit-remaining')).toBe('1')
    await middleware(request('203.0.113.7'))
    const c = (await middleware(request('203.0.113.7'))) as Response
    expect(c.status).toBe(429)
    expect(c.headers.get('x-middleware-next')).toBeNull()
    expect(c.headers.get('retry-after')).toBe('30')
    expect(await c.json()).toEqual({ error: 'rate_limit_exceeded', message: 'Too many requests. Please try again later.', retry_after: 30 })
    // Another client, and an exempt path.
    expect(((await middleware(request('203.0.113.8'))) as Response).headers.get('ratelimit-remaining')).toBe('1')
    const health = (await middleware(request('203.0.113.7', '/healthz'))) as Response
    expect(health.headers.get('x-middleware-next')).toBe('1')
    expect(health.headers.get('ratelimit-limit')).toBeNull()
  })

  it('without next, an admitted request gets undefined (Next continues)', async () => {
    const middleware = haltMiddleware(limiter(), { getIp: ipFromHeader('x-real-ip') })
    expect(await middleware(request('203.0.113.7'))).toBeUndefined()
  })

  it('without getIp every request shares ip:unknown, and a warning says how to fix it', async () => {
    const warnings: HaltWarning[] = []
    const middleware = haltMiddleware(limiter(warnings))
    await middleware(request('203.0.113.1'))
    await middleware(request('203.0.113.2'))
    expect(((await middleware(request('203.0.113.3'))) as Response).status).toBe(429)
    expect(warnings.map((w) => w.code)).toEqual(['HALT_NO_CLIENT_ADDRESS'])
    expect(warnings[0]!.message).toMatch(/getIp: ipFromHeader\('x-real-ip'\)/)
  })

  it('withHalt passes the route context through and keys by a session user', async () => {
    const l = new RateLimiter({ policy: { name: 'u', limit: 1, window: 60, keyStrategy: 'user' }, store: new InMemoryStore({ sweepInterval: 0 }) })
    const GET = withHalt(l, async (_req, ctx: { params: Promise<{ id: string }> }) => Response.json({ id: (await ctx.params).id }), {
      getIp: ipFromHeader('x-real-ip'),
      getUser: (req) => req.headers.get('cookie')?.replace('session=', ''),
    })
    const call = (cookie: string) =>
      GET(new NextRequest('https://example.com/api/items/7', { headers: { cookie, 'x-real-ip': '203.0.113.7' } }), { params: Promise.resolve({ id: '7' }) })
    const a = await call('session=ada')
    expect(await a.json()).toEqual({ id: '7' })
    expect((await call('session=ada')).status).toBe(429)
    expect((await call('session=grace')).status).toBe(200)
  })
})
