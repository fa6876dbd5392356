// In-process benchmark: what telemetry costs an in-memory check (hot key), with no telemetry, a no-op hook,
// MetricsTelemetry, LoggingTelemetry into a no-op logger, and PrometheusTelemetry. Rounds alternate; medians.
// Run from the repository root after a build: node bench/telemetry.mjs
import { InMemoryStore, LoggingTelemetry, MetricsTelemetry, RateLimiter } from 'halt'
import { PrometheusTelemetry } from 'halt/prometheus'
import { Registry } from 'prom-client'
import { median, table } from './lib.mjs'

const N = Number(process.env.CHECKS ?? 1_000_000)
const ROUNDS = Number(process.env.ROUNDS ?? 5)
const quiet = { info() {}, warn() {} }
const setups = {
  'no telemetry': () => undefined,
  'a no-op onCheck': () => ({ onCheck() {} }),
  MetricsTelemetry: () => new MetricsTelemetry(),
  'LoggingTelemetry (no-op logger)': () => new LoggingTelemetry({ logger: quiet }),
  PrometheusTelemetry: () => new PrometheusTelemetry({ registry: new Registry() }),
}

function run(make) {
  const limiter = new RateLimiter({
    store: new InMemoryStore({ sweepInterval: 0 }),
    policy: { name: 'bench', limit: 1e12, window: 60 },
    telemetry: make(),
  })
  for (let i = 0; i < 50_000; i++) limiter.check('hot') // warm-up
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) limiter.check('hot')
  return Number(process.hrtime.bigint() - t0) / N // ns per check
}

const ns = new Map(Object.keys(setups).map((k) => [k, []]))
for (let r = 0; r < ROUNDS; r++) for (const [k, make] of Object.entries(setups)) ns.get(k).push(run(make))
const base = median(ns.get('no telemetry'))
console.log(`node ${process.version}; ${ROUNDS} rounds of ${N} checks on one hot key, alternating; medians\n`)
console.log(
  table(
    ['telemetry', 'ns per check', 'added'],
    Object.keys(setups).map((k) => {
      const m = median(ns.get(k))
      return [k, m.toFixed(0), k === 'no telemetry' ? '' : `+${(m - base).toFixed(0)} ns`]
    }),
  ),
)
