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
})
