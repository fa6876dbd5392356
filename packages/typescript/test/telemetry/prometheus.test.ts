// halt/prometheus: an Express app limited by Halt serves /metrics from prom-client; the test scrapes it over real HTTP.
import type { AddressInfo } from 'node:net'
import express from 'express'
import * as client from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { haltMiddleware } from '../../src/adapters/express/index.js'
import { HaltConfigError, InMemoryStore, type Outcome, RateLimiter, type Store } from '../../src/index.js'
import { PrometheusTelemetry } from '../../src/telemetry/prometheus/index.js'

const RAW_KEY = 'sk_live_0123456789abcdef'

/** `name{labels} value` lines of a scrape, labels in the order given. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(name.length, at), Number(line.slice(at + 1)))
  }
  return out
}

let url = ''
let close: () => Promise<void> = async () => {}
const registry = new client.Registry()
const down = { on: false }

beforeAll(async () => {
  const telemetry = new PrometheusTelemetry({ registry })
  const api = new RateLimiter({
    store: new InMemoryStore({ sweepInterval: 0 }),
    policy: { name: 'api', limit: 3, window: 60, keyStrategy: 'api_key' },
    telemetry,
    trustedProxies: ['loopback'],
    exemptPrivateIps: false,
  })
  // A remote store that the test can take down: the failure policy answers, and the errors are counted.
  const inner = new InMemoryStore({ sweepInterval: 0 })
  const flaky: Store = {
    synchronous: false,
    consume: async (...a) => {
      if (down.on) throw new Error('ECONNREFUSED')
      return { ...inner.consume(...a) } as Outcome
    },
    peek: async (...a) => ({ ...inner.peek(...a) }) as Outcome,
    reset: async () => {},
    clear: async () => {},
  }
  const reports = new RateLimiter({
    store: flaky,
    policy: { name: 'reports', limit: 100, window: 60 },
    telemetry: new PrometheusTelemetry({ registry }), // a second exporter on the same registry shares its metrics
    onStoreError: 'closed',
    retryStoreAfter: 0,
    exemptPrivateIps: false,
  })
  const app = express()
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics())
  })
  app.use('/api', haltMiddleware(api))
  app.get('/api/hello', (_req, res) => {
    res.send('hello')
  })
  app.get('/reports', haltMiddleware(reports), (_req, res) => {
    res.send('report')
  })
  app.get('/health', haltMiddleware(api), (_req, res) => {
    res.send('ok')
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((ok) => server.once('listening', ok))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  close = () => new Promise<void>((ok) => server.close(() => ok()))
})
afterAll(() => close())

describe('halt/prometheus over a real /metrics', () => {
  it('counts decisions by policy, outcome and reason, times checks, and never exposes a key', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await fetch(`${url}/api/hello`, { headers: { 'x-api-key': RAW_KEY } })).status)
    statuses.push((await fetch(`${url}/api/hello`, { headers: { authorization: 'Bearer another-key' } })).status)
    statuses.push((await fetch(`${url}/health`)).status)
    statuses.push((await fetch(`${url}/reports`)).status)
    down.on = true
    statuses.push((await fetch(`${url}/reports`)).status)
    statuses.push((await fetch(`${url}/reports`)).status)
    down.on = false
    expect(statuses).toEqual([200, 200, 200, 429, 429, 200, 200, 200, 503, 503]) // closed on store errors: 503

    const res = await fetch(`${url}/metrics`)
    expect(res.headers.get('content-type')).toContain('text/plain')
    const text = await res.text()
    const decisions = samples(text, 'halt_decisions_total')
    expect(Object.fromEntries(decisions)).toEqual({
      '{policy="api",outcome="allowed",reason="none",shadow="false"}': 4,
      '{policy="api",outcome="blocked",reason="limit",shadow="false"}': 2,
      '{policy="api",outcome="exempt",reason="exempt",shadow="false"}': 1,
      '{policy="reports",outcome="allowed",reason="none",shadow="false"}': 1,
      '{policy="reports",outcome="blocked",reason="store_error",shadow="false"}': 2,
    })
    expect(Object.fromEntries(samples(text, 'halt_store_errors_total'))).toEqual({ '{policy="reports",operation="check",action="closed"}': 2 })
    // Every non-exempt check is timed, in seconds.
    expect(samples(text, 'halt_check_duration_seconds_count').get('{policy="api"}')).toBe(6)
    expect(samples(text, 'halt_check_duration_seconds_count').get('{policy="reports"}')).toBe(3)
    expect(samples(text, 'halt_check_duration_seconds_bucket').get('{le="+Inf",policy="api"}')).toBe(6)
    expect(text).toContain('# TYPE halt_check_duration_seconds histogram')
    expect(text).toContain('# TYPE halt_near_limit_total counter')
    // No series per client: no key label, no key, no address.
    expect(text).not.toContain(RAW_KEY)
    expect(text).not.toContain('apikey')
    expect(text).not.toContain('127.0.0.1')
    expect(text).not.toMatch(/key="/)
  })

  it('counts near-limit signals and labels shadow decisions', async () => {
    const t = new PrometheusTelemetry({ registry })
    const d = { allowed: false, limit: 10, remaining: 0, resetAt: 0, retryAfter: 1, policy: 'trial', reason: 'limit' as const, delay: 0 }
    t.onCheck({ key: 'user:1', cost: 1, decision: d, shadow: true })
    t.onNearLimit({ key: 'user:1', cost: 1, decision: { ...d, allowed: true, reason: undefined }, shadow: true })
    t.onNearLimit({ key: 'user:2', cost: 1, decision: { ...d, allowed: true, reason: undefined } })
    const text = await (await fetch(`${url}/metrics`)).text()
    expect(samples(text, 'halt_decisions_total').get('{policy="trial",outcome="blocked",reason="limit",shadow="true"}')).toBe(1)
    expect(Object.fromEntries(samples(text, 'halt_near_limit_total'))).toEqual({
      '{policy="api",shadow="false"}': 1, // the limiter's own signal, in the first test: the 3rd request of 3 crossed 80%
      '{policy="trial",shadow="true"}': 1,
      '{policy="trial",shadow="false"}': 1,
    })
  })
})

describe('PrometheusTelemetry options', () => {
  it('registers on prom-client`s global register by default, with a custom prefix', async () => {
    const t = new PrometheusTelemetry({ prefix: 'myapp_halt_' })
    new RateLimiter({ policy: { name: 'g', limit: 1, window: 1 }, telemetry: t }).check('k')
    expect(await client.register.metrics()).toContain('myapp_halt_decisions_total{policy="g",outcome="allowed",reason="none",shadow="false"} 1')
    client.register.clear()
  })

  it('takes the module itself (runtimes that cannot require), and rejects bad options', () => {
    expect(() => new PrometheusTelemetry({ client, registry: new client.Registry() })).not.toThrow()
    for (const o of [{ prefix: 'bad-prefix' }, { buckets: [] }, { buckets: [0.1, 0.01] }, { registry: {} }]) {
      expect(() => new PrometheusTelemetry({ ...o, registry: (o as { registry?: client.Registry }).registry ?? new client.Registry() } as never)).toThrow(
        HaltConfigError,
      )
    }
  })
})
