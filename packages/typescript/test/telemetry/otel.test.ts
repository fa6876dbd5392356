// halt/otel: metrics read back through the OpenTelemetry SDK's InMemoryMetricExporter, span events through its InMemorySpanExporter.
import type { AddressInfo } from 'node:net'
import { context, metrics, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import express from 'express'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { haltMiddleware } from '../../src/adapters/express/index.js'
import { HaltConfigError, InMemoryStore, RateLimiter } from '../../src/index.js'
import { OTelTelemetry } from '../../src/telemetry/otel/index.js'
import { view } from '../http/support.js'
import { asyncStore } from '../support/async-store.js'

const RAW_KEY = 'sk_live_0123456789abcdef'
const contextManager = new AsyncLocalStorageContextManager()
const spans = new InMemorySpanExporter()
const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] })
const tracer = tracerProvider.getTracer('test')
let exporter: InMemoryMetricExporter
let reader: PeriodicExportingMetricReader
let meterProvider: MeterProvider

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable())
})
afterAll(async () => {
  context.disable()
  await tracerProvider.shutdown()
})
beforeEach(async () => {
  await meterProvider?.shutdown()
  exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  meterProvider = new MeterProvider({ readers: [reader] })
  spans.reset()
})

/** Every data point of the instrument `name` in the last export. */
async function points<T = number>(name: string): Promise<DataPoint<T>[]> {
  await reader.forceFlush()
  const last = exporter.getMetrics().at(-1)
  const metric = last?.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name)
  return (metric?.dataPoints ?? []) as DataPoint<T>[]
}

function limiter(telemetry: OTelTelemetry, policy = { name: 'api', limit: 2, window: 60 }) {
  return new RateLimiter({ store: new InMemoryStore({ sweepInterval: 0 }), policy, telemetry, onWarning: () => {} })
}

describe('halt/otel metrics', () => {
  it('counts decisions by policy, outcome, reason and shadow, and records check durations in seconds', async () => {
    const t = new OTelTelemetry({ meter: meterProvider.getMeter('halt') })
    const l = limiter(t)
    for (let i = 0; i < 3; i++) l.check('ip:203.0.113.7')
    l.check(view({ path: '/health' }))
    t.onCheck({
      key: 'k',
      cost: 1,
      shadow: true,
      decision: { allowed: false, limit: 5, remaining: 0, resetAt: 0, retryAfter: 1, policy: 'trial', reason: 'limit', delay: 0 },
    })
    const decisions = (await points('halt.decisions')).map((p) => ({ ...p.attributes, value: p.value }))
    expect(decisions).toEqual(
      expect.arrayContaining([
        { 'halt.policy': 'api', 'halt.outcome': 'allowed', 'halt.reason': 'none', 'halt.shadow': false, value: 2 },
        { 'halt.policy': 'api', 'halt.outcome': 'blocked', 'halt.reason': 'limit', 'halt.shadow': false, value: 1 },
        { 'halt.policy': 'api', 'halt.outcome': 'exempt', 'halt.reason': 'exempt', 'halt.shadow': false, value: 1 },
        { 'halt.policy': 'trial', 'halt.outcome': 'blocked', 'halt.reason': 'limit', 'halt.shadow': true, value: 1 },
      ]),
    )
    expect(decisions).toHaveLength(4)
    const [duration] = await points<Histogram>('halt.check.duration')
    expect(duration!.attributes).toEqual({ 'halt.policy': 'api' })
    expect(duration!.value.count).toBe(3) // the exempt request reached no store: not timed
    expect(duration!.value.max).toBeLessThan(1) // seconds
    expect(duration!.value.buckets.boundaries[0]).toBe(0.00001)
  })

  it('counts near-limit signals and store errors; no metric carries a key', async () => {
    const t = new OTelTelemetry({ meter: meterProvider.getMeter('halt'), spanEvents: false })
    const d = { allowed: true, limit: 10, remaining: 1, resetAt: 0, retryAfter: 0, policy: 'api', delay: 0 }
    t.onNearLimit({ key: 'user:7', cost: 1, decision: d })
    t.onError({ error: new Error('down'), key: 'user:7', policy: 'api', operation: 'check', action: 'fallback' })
    expect((await points('halt.near_limit')).map((p) => [p.attributes, p.value])).toEqual([[{ 'halt.policy': 'api', 'halt.shadow': false }, 1]])
    expect((await points('halt.store_errors')).map((p) => [p.attributes, p.value])).toEqual([
      [{ 'halt.policy': 'api', 'halt.operation': 'check', 'halt.action': 'fallback' }, 1],
    ])
    expect(JSON.stringify(exporter.getMetrics())).not.toContain('user:7')
  })

  it('uses the global meter provider by default', async () => {
    metrics.setGlobalMeterProvider(meterProvider)
    try {
      limiter(new OTelTelemetry()).check('k')
      expect((await points('halt.decisions')).map((p) => p.value)).toEqual([1])
    } finally {
      metrics.disable()
    }
  })
})

describe('halt/otel span events', () => {
  it('adds halt.decision to the active span, on a synchronous and an asynchronous store', async () => {
    const t = new OTelTelemetry({ meter: meterProvider.getMeter('halt') })
    const sync = limiter(t, { name: 'api', limit: 1, window: 60 })
    const remote = new RateLimiter({ store: asyncStore(), policy: { name: 'remote', limit: 5, window: 60 }, telemetry: t })
    tracer.startActiveSpan('GET /a', (span) => {
      sync.check('ip:203.0.113.7')
      sync.check('ip:203.0.113.7')
      span.end()
    })
    await tracer.startActiveSpan('GET /b', async (span) => {
      await remote.check('user:42') // the event is added after the await: the context survives it
      span.end()
    })
    sync.check('ip:203.0.113.8') // no active span: metrics only
    const [a, b] = spans.getFinishedSpans()
    expect(spans.getFinishedSpans()).toHaveLength(2)
    expect(a!.events.map((e) => [e.name, e.attributes])).toEqual([
      [
        'halt.decision',
        {
          'halt.policy': 'api',
          'halt.outcome': 'allowed',
          'halt.reason': 'none',
          'halt.shadow': false,
          'halt.remaining': 0,
          'halt.limit': 1,
          'halt.retry_after': 0,
          'halt.cost': 1,
          'halt.key': 'ip:203.0.113.7',
        },
      ],
      // The limiter's near-limit signal: the first request took the policy to its whole capacity.
      ['halt.near_limit', { 'halt.policy': 'api', 'halt.remaining': 0, 'halt.limit': 1, 'halt.shadow': false, 'halt.key': 'ip:203.0.113.7' }],
      ['halt.decision', expect.objectContaining({ 'halt.outcome': 'blocked', 'halt.reason': 'limit', 'halt.retry_after': 60 })],
    ])
    expect(b!.events.map((e) => e.attributes?.['halt.key'])).toEqual(['user:42'])
  })

  it('through Express: the request span carries the decision, the API key only hashed; recordKey: false leaves keys out', async () => {
    const make = (recordKey: boolean) =>
      new RateLimiter({
        policy: { name: 'api', limit: 5, window: 60, keyStrategy: 'api_key' },
        telemetry: new OTelTelemetry({ meter: meterProvider.getMeter('halt'), recordKey }),
        exemptPrivateIps: false,
        onWarning: () => {},
      })
    const app = express()
    app.use((req, res, next) => {
      const span = tracer.startSpan(`${req.method} ${req.path}`)
      res.on('finish', () => span.end())
      context.with(trace.setSpan(context.active(), span), next)
    })
    app.get('/with-key', haltMiddleware(make(true)), (_req, res) => {
      res.send('ok')
    })
    app.get('/without-key', haltMiddleware(make(false)), (_req, res) => {
      res.send('ok')
    })
    const server = app.listen(0, '127.0.0.1')
    await new Promise<void>((ok) => server.once('listening', ok))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      expect((await fetch(`${url}/with-key`, { headers: { 'x-api-key': RAW_KEY } })).status).toBe(200)
      expect((await fetch(`${url}/without-key`, { headers: { 'x-api-key': RAW_KEY } })).status).toBe(200)
    } finally {
      await new Promise<void>((ok) => server.close(() => ok()))
    }
    const finished = spans.getFinishedSpans()
    expect(finished.map((s) => s.name)).toEqual(['GET /with-key', 'GET /without-key'])
    expect(finished[0]?.events[0]?.attributes?.['halt.key']).toMatch(/^apikey:[0-9a-f]{32}$/)
    expect(finished[1]?.events[0]?.name).toBe('halt.decision')
    expect(finished[1]?.events[0]?.attributes?.['halt.key']).toBeUndefined()
    expect(JSON.stringify(finished.map((s) => s.events))).not.toContain(RAW_KEY)
  })

  it('store errors and near-limit signals become span events too', () => {
    const t = new OTelTelemetry({ meter: meterProvider.getMeter('halt') })
    tracer.startActiveSpan('job', (span) => {
      t.onError({ error: new Error('ECONNREFUSED'), key: 'k', policy: 'api', operation: 'check', action: 'closed' })
      t.onNearLimit({ key: 'k', cost: 1, decision: { allowed: true, limit: 10, remaining: 1, resetAt: 0, retryAfter: 0, policy: 'api', delay: 0 } })
      span.end()
    })
    expect(spans.getFinishedSpans()[0]!.events.map((e) => [e.name, e.attributes])).toEqual([
      ['halt.store_error', { 'halt.policy': 'api', 'halt.operation': 'check', 'halt.action': 'closed', 'exception.message': 'ECONNREFUSED' }],
      ['halt.near_limit', { 'halt.policy': 'api', 'halt.remaining': 1, 'halt.limit': 10, 'halt.shadow': false, 'halt.key': 'k' }],
    ])
  })

  it('rejects something that is not a Meter', () => {
    expect(() => new OTelTelemetry({ meter: {} as never, spanEvents: false })).toThrow(HaltConfigError)
  })
})
