// The HTTP `quota` option over real HTTP: Express and Fetch servers on loopback, a monthly quota on a fake clock.
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { haltMiddleware as expressHalt } from '../../src/adapters/express/index.js'
import { haltPlugin } from '../../src/adapters/fastify/index.js'
import { withHalt } from '../../src/adapters/fetch/index.js'
import {
  type DecisionEvent,
  definePlans,
  HaltConfigError,
  InMemoryStore,
  type Quota,
  QuotaManager,
  RateLimiter,
  type Store,
  type StoreErrorEvent,
} from '../../src/index.js'
import { fakeClock } from '../support/clock.js'

const NOW = Date.UTC(2026, 0, 31, 12)
const RESET = Date.UTC(2026, 1, 1) / 1000
const monthly: Quota = { name: 'api_calls', limit: 3, period: 'monthly' }

interface Served {
  url: string
  close(): Promise<void>
}

function parts() {
  const clock = fakeClock(NOW)
  const store = new InMemoryStore({ sweepInterval: 0 })
  const limiter = new RateLimiter({ store, clock, policy: { name: 'rl', limit: 5, window: 60, keyStrategy: 'api_key' }, exemptPrivateIps: false })
  const quotas = new QuotaManager(store, { clock })
  return { clock, limiter, quotas }
}

async function expressServer(): Promise<Served> {
  const { limiter, quotas } = parts()
  const app = express()
  app.use(expressHalt(limiter, { quota: { manager: quotas, quota: monthly } }))
  app.get('/api/x', (_req, res) => {
    res.send('ok')
  })
  app.get('/health', (_req, res) => {
    res.send('up')
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((ok) => server.once('listening', ok))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((ok) => server.close(() => ok())) }
}

async function fetchServer(): Promise<Served> {
  const { limiter, quotas } = parts()
  const handler = withHalt(limiter, () => new Response('ok'), { quota: { manager: quotas, quota: monthly }, getIp: () => '203.0.113.9' })
  const server = await new Promise<ReturnType<typeof serve>>((ok) => {
    const s = serve({ fetch: handler, port: 0, hostname: '127.0.0.1' }, () => ok(s))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((ok) => server.close(() => ok())) }
}

async function fastifyServer(): Promise<Served> {
  const { limiter, quotas } = parts()
  const app = Fastify()
  await app.register(haltPlugin, { limiter, quota: { manager: quotas, quota: monthly } })
  app.get('/api/x', async () => 'ok')
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
}

for (const [name, start] of [
  ['express', expressServer],
  ['fetch', fetchServer],
  ['fastify (plugin)', fastifyServer],
] as const) {
  describe(`quota option over real HTTP: ${name}`, () => {
    let served: Served
    beforeAll(async () => {
      served = await start()
    })
    afterAll(() => served.close())
    const get = (key: string, path = '/api/x') => fetch(`${served.url}${path}`, { headers: { 'x-api-key': key } })

    it('admits up to the quota, then answers 429 quota_exceeded with the reset time', async () => {
      for (let i = 0; i < 3; i++) expect((await get('key-a')).status).toBe(200)
      const r = await get('key-a')
      expect(r.status).toBe(429)
      expect(Number(r.headers.get('retry-after'))).toBe(RESET - NOW / 1000)
      expect(await r.json()).toEqual({
        error: 'quota_exceeded',
        message: 'Quota exceeded. It resets at 2026-02-01T00:00:00Z.',
        quota: 'api_calls',
        limit: 3,
        reset_at: '2026-02-01T00:00:00Z',
        retry_after: RESET - NOW / 1000,
      })
    })

    it('keeps identities apart (the limiter`s key strategy: the API key)', async () => {
      expect((await get('key-b')).status).toBe(200)
    })
  })
}

describe('quota option: details', () => {
  it('a request the rate limiter rejects takes no quota; an exempt one neither', async () => {
    const { quotas } = parts()
    const tight = new RateLimiter({ policy: { name: 'tight', limit: 1, window: 60, keyStrategy: 'api_key' }, exemptPrivateIps: false })
    const h = withHalt([tight], () => new Response('ok'), { quota: { manager: quotas, quota: monthly }, getIp: () => '203.0.113.9' })
    const req = () => new Request('http://x/api', { headers: { 'x-api-key': 'k' } })
    expect((await h(req(), undefined)).status).toBe(200)
    expect((await h(req(), undefined)).status).toBe(429)
    const key = tight.identify({ ip: '203.0.113.9', method: 'GET', path: '/api', header: (n) => (n === 'x-api-key' ? 'k' : undefined) }) as string
    expect(quotas.checkQuota(key, monthly).quota.used).toBe(1)
    const health = await h(new Request('http://x/health', { headers: { 'x-api-key': 'k' } }), undefined)
    expect(health.status).toBe(200)
    expect(quotas.checkQuota(key, monthly).quota.used).toBe(1)
  })

  it('per-plan quotas through a plan table', async () => {
    const { clock, quotas } = parts()
    const plans = definePlans(
      {
        free: { policy: { name: 'free', limit: 100, window: 60, keyStrategy: 'api_key' }, quota: { name: 'q_free', limit: 1, period: 'monthly' } },
        pro: { policy: { name: 'pro', limit: 1000, window: 60, keyStrategy: 'api_key' }, quota: { name: 'q_pro', limit: 3, period: 'monthly' } },
      },
      { defaultPlan: 'free' },
    )
    const users: Record<string, string> = { 'key-pro': 'pro', 'key-free': 'free' }
    const planOf = (req: { header(n: string): string | undefined }) => users[req.header('x-api-key') ?? '']
    const limiter = new RateLimiter({ clock, policy: plans.resolver(planOf), defaultPolicy: plans.policy('free'), exemptPrivateIps: false })
    const h = withHalt(limiter, () => new Response('ok'), { quota: { manager: quotas, quota: plans.quotaResolver(planOf) }, getIp: () => '203.0.113.9' })
    const call = async (key: string) => (await h(new Request('http://x/api', { headers: { 'x-api-key': key } }), undefined)).status
    expect([await call('key-free'), await call('key-free')]).toEqual([200, 429])
    expect([await call('key-pro'), await call('key-pro'), await call('key-pro'), await call('key-pro')]).toEqual([200, 200, 200, 429])
    clock.set(Date.UTC(2026, 1, 1))
    expect(await call('key-free')).toBe(200)
  })

  it('a failing quota store lets requests through by default, or answers 503 when closed', async () => {
    const { limiter } = parts()
    const broken = { consumeQuota: () => Promise.reject(new Error('down')), define: (q: Quota) => q, period: () => ({ startMs: 0, endMs: 1 }) }
    const req = () => new Request('http://x/api', { headers: { 'x-api-key': 'z' } })
    const open = withHalt(limiter, () => new Response('ok'), { quota: { manager: broken, quota: monthly }, getIp: () => '203.0.113.9' })
    expect((await open(req(), undefined)).status).toBe(200)
    const closed = withHalt(limiter, () => new Response('ok'), {
      quota: { manager: broken, quota: monthly, onStoreError: 'closed' },
      getIp: () => '203.0.113.9',
    })
    expect((await closed(req(), undefined)).status).toBe(503)
  })

  it('telemetry: a request and its quota carry one request id; a failing quota store reaches onError with the action taken', async () => {
    const { clock } = parts()
    const store = new InMemoryStore({ sweepInterval: 0 })
    const events: { hook: string; policy: string; requestId?: string }[] = []
    const errors: { action: string; policy: string; key: string }[] = []
    const telemetry = {
      onCheck: (e: DecisionEvent) =>
        events.push({ hook: 'check', policy: e.decision.policy, ...(e.requestId === undefined ? {} : { requestId: e.requestId }) }),
      onError: (e: StoreErrorEvent) => errors.push({ action: e.action, policy: e.policy, key: e.key }),
    }
    const limiter = new RateLimiter({ store, clock, policy: { name: 'rl', limit: 5, window: 60 }, exemptPrivateIps: false, telemetry })
    const quotas = new QuotaManager(store, { clock, telemetry })
    const h = withHalt(limiter, () => new Response('ok'), { quota: { manager: quotas, quota: monthly }, getIp: () => '203.0.113.9' })
    expect((await h(new Request('http://x/api'), undefined)).status).toBe(200)
    expect((await h(new Request('http://x/api', { headers: { 'x-request-id': 'r-42' } }), undefined)).status).toBe(200)
    expect(events.map((e) => e.policy)).toEqual(['rl', 'api_calls', 'rl', 'api_calls'])
    expect(events[0]?.requestId).toMatch(/^[0-9a-f]{8}$/)
    expect(events[1]?.requestId).toBe(events[0]?.requestId)
    expect(events.slice(2).map((e) => e.requestId)).toEqual(['r-42', 'r-42'])

    const down = new Error('quota store down')
    const broken: Store = {
      synchronous: false,
      consume: () => Promise.reject(down),
      peek: () => Promise.reject(down),
      reset: () => Promise.resolve(),
      clear: () => Promise.resolve(),
    }
    const failing = new QuotaManager(broken, { clock, telemetry })
    for (const mode of ['open', 'closed'] as const) {
      const g = withHalt(limiter, () => new Response('ok'), { quota: { manager: failing, quota: monthly, onStoreError: mode }, getIp: () => '203.0.113.9' })
      expect((await g(new Request('http://x/api'), undefined)).status).toBe(mode === 'open' ? 200 : 503)
    }
    expect(errors).toEqual([
      { action: 'open', policy: 'api_calls', key: 'ip:203.0.113.9' },
      { action: 'closed', policy: 'api_calls', key: 'ip:203.0.113.9' },
    ])
    // A direct call rejects, after onError (action 'closed': nothing was taken).
    await expect(failing.consumeQuota('user:1', monthly)).rejects.toBe(down)
    expect(errors.at(-1)).toEqual({ action: 'closed', policy: 'api_calls', key: 'user:1' })
  })

  it('bad options fail when the middleware is created', () => {
    const { limiter, quotas } = parts()
    expect(() => expressHalt(limiter, { quota: { manager: quotas, quota: { name: 'x', limit: -1, period: 'monthly' } } })).toThrow(HaltConfigError)
    expect(() => expressHalt(limiter, { quota: { manager: {} as QuotaManager, quota: monthly } })).toThrow(/QuotaManager/)
    expect(() => expressHalt(limiter, { quota: { manager: quotas, quota: monthly, cost: -2 } })).toThrow(HaltConfigError)
    const bare = { check: () => limiter.check('x'), writeHeaders: () => {}, hasPolicy: () => false }
    expect(() => expressHalt(bare, { quota: { manager: quotas, quota: monthly } })).toThrow(/quota.key/)
  })
})
