// halt/fastify over a real Fastify 5 server on loopback: the plugin with per-route config, and haltHook.
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import { haltHook, haltPlugin } from '../../src/adapters/fastify/index.js'
import { InMemoryStore, RateLimiter } from '../../src/index.js'
import { adapterContract, CUSTOM_REJECTION } from './contract.js'

adapterContract('fastify', async ({ global, strict, options, customReject }) => {
  const app = Fastify()
  app.addHook('onRequest', (req, _reply, done) => {
    const user = req.headers['x-user']
    if (typeof user === 'string') (req as unknown as { user: unknown }).user = { id: user }
    done()
  })
  await app.register(haltPlugin, {
    limiter: global,
    ...options,
    onLimited: customReject ? (_req, reply) => void (reply.code(CUSTOM_REJECTION.status), reply.send(CUSTOM_REJECTION.body)) : undefined,
  })
  app.get('/api/hello', async () => 'hello')
  app.get('/api/strict', { config: { halt: strict } }, async () => 'strict')
  app.get('/health', async () => 'ok')
  app.get('/health;x', async () => 'ok')
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
})

describe('fastify specifics', () => {
  const limiter = (limit: number) =>
    new RateLimiter({ policy: { name: `l${limit}`, limit, window: 60 }, exemptPrivateIps: false, store: new InMemoryStore({ sweepInterval: 0 }) })

  it('config.halt: false takes a route out of the app-wide limiter; routes without config.halt are limited only when a global limiter is set', async () => {
    const app = Fastify()
    await app.register(haltPlugin, { limiter: limiter(1) })
    app.get('/a', async () => 'a')
    app.get('/free', { config: { halt: false } }, async () => 'free')
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      expect((await fetch(`${url}/a`)).status).toBe(200)
      expect((await fetch(`${url}/a`)).status).toBe(429)
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`${url}/free`)
        expect(r.status).toBe(200)
        expect(r.headers.get('ratelimit-limit')).toBeNull()
      }
    } finally {
      await app.close()
    }
  })

  it('without a global limiter only routes with config.halt are limited; haltHook limits one route', async () => {
    const app = Fastify()
    await app.register(haltPlugin, {})
    app.get('/open', async () => 'open')
    app.get('/cfg', { config: { halt: [limiter(1)] } }, async () => 'cfg')
    app.get('/hook', { onRequest: haltHook(limiter(1)) }, async () => 'hook')
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      for (let i = 0; i < 3; i++) expect((await fetch(`${url}/open`)).headers.get('ratelimit-limit')).toBeNull()
      expect((await fetch(`${url}/cfg`)).status).toBe(200)
      expect((await fetch(`${url}/cfg`)).status).toBe(429)
      expect((await fetch(`${url}/hook`)).status).toBe(200)
      expect((await fetch(`${url}/hook`)).status).toBe(429)
    } finally {
      await app.close()
    }
  })

  it('applies to routes in encapsulated child plugins registered after it', async () => {
    const app = Fastify()
    await app.register(haltPlugin, { limiter: limiter(1) })
    await app.register(
      async (child) => {
        child.get('/inner', async () => 'inner')
      },
      { prefix: '/child' },
    )
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      expect((await fetch(`${url}/child/inner`)).status).toBe(200)
      expect((await fetch(`${url}/child/inner`)).status).toBe(429)
    } finally {
      await app.close()
    }
  })

  it('applies to routes registered before the plugin, with their config.halt, and to 404s', async () => {
    // Each path is asked for by its own client (X-Forwarded-For from trusted loopback), so the limits do not mix.
    const byClient = (limit: number) =>
      new RateLimiter({ policy: { name: `c${limit}`, limit, window: 60 }, trustedProxies: ['loopback'], store: new InMemoryStore({ sweepInterval: 0 }) })
    const app = Fastify()
    app.get('/early', async () => 'early')
    app.get('/early-strict', { config: { halt: byClient(1) } }, async () => 'strict')
    app.get('/early-free', { config: { halt: false } }, async () => 'free')
    app.register(async (child) => {
      child.get('/early-child', async () => 'child')
    })
    await app.register(haltPlugin, { limiter: byClient(2) })
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    const get = (path: string, client: string) => fetch(`${url}${path}`, { headers: { 'x-forwarded-for': client } })
    try {
      for (const [path, client] of [
        ['/early', '203.0.113.1'],
        ['/early-child', '203.0.113.2'],
        ['/nothing-here', '203.0.113.3'],
      ] as const) {
        const first = await get(path, client)
        expect(first.headers.get('ratelimit-limit')).toBe('2')
        await get(path, client)
        expect((await get(path, client)).status).toBe(429)
      }
      const strict = await get('/early-strict', '203.0.113.4')
      expect([strict.status, strict.headers.get('ratelimit-limit')]).toEqual([200, '1'])
      expect((await get('/early-strict', '203.0.113.4')).status).toBe(429)
      for (let i = 0; i < 3; i++) expect((await get('/early-free', '203.0.113.5')).headers.get('ratelimit-limit')).toBeNull()
    } finally {
      await app.close()
    }
  })

  it('applies to routes registered after it when the registration is not awaited', async () => {
    const app = Fastify()
    app.register(haltPlugin, { limiter: limiter(1) })
    app.get('/a', async () => 'a')
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      expect((await fetch(`${url}/a`)).status).toBe(200)
      expect((await fetch(`${url}/a`)).status).toBe(429)
    } finally {
      await app.close()
    }
  })

  it('limits 404s when every route comes after it, and a route counts once', async () => {
    const app = Fastify()
    await app.register(haltPlugin, { limiter: limiter(3) })
    app.get('/a', async () => 'a')
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      const a = await fetch(`${url}/a`)
      expect([a.status, a.headers.get('ratelimit-remaining')]).toEqual([200, '2'])
      const missing = await fetch(`${url}/missing`)
      expect([missing.status, missing.headers.get('ratelimit-remaining')]).toEqual([404, '1'])
      await fetch(`${url}/missing`)
      expect((await fetch(`${url}/missing`)).status).toBe(429)
    } finally {
      await app.close()
    }
  })

  it('on routes registered after it, runs after every onRequest hook of the route, so a user set by a later hook is seen', async () => {
    const app = Fastify()
    const perUser = new RateLimiter({
      policy: { name: 'u', limit: 1, window: 60, keyStrategy: 'user' },
      exemptPrivateIps: false,
      store: new InMemoryStore({ sweepInterval: 0 }),
    })
    await app.register(haltPlugin, { limiter: perUser })
    app.addHook('onRequest', (req, _reply, done) => {
      ;(req as unknown as { user: unknown }).user = { id: req.headers['x-user'] }
      done()
    })
    app.get('/me', async () => 'me')
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      expect((await fetch(`${url}/me`, { headers: { 'x-user': 'ada' } })).status).toBe(200)
      expect((await fetch(`${url}/me`, { headers: { 'x-user': 'ada' } })).status).toBe(429)
      expect((await fetch(`${url}/me`, { headers: { 'x-user': 'bob' } })).status).toBe(200)
    } finally {
      await app.close()
    }
  })

  it('a bad config.halt fails when the route is registered', async () => {
    const app = Fastify()
    await app.register(haltPlugin, { limiter: limiter(1) })
    expect(() => app.get('/bad', { config: { halt: {} as never } }, async () => 'bad')).toThrow(expect.objectContaining({ code: 'HALT_INVALID_LIMITER' }))
    await app.close()
  })
})
