// Reads {configs, steps} as JSON on stdin; for every config runs the steps through the built TypeScript package's
// limiter with LoggingTelemetry and MetricsTelemetry on a fake clock, and prints the log lines and the snapshot:
// the other half of tests/telemetry/test_node_parity.py.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

const [dist] = process.argv.slice(2)
const { RateLimiter, InMemoryStore, LoggingTelemetry, MetricsTelemetry } = await import(pathToFileURL(dist).href)
const input = JSON.parse(readFileSync(0, 'utf8'))

const out = input.configs.map((c) => {
  let now = input.t0
  const clock = () => now
  const lines = []
  const logger = { info: (l) => lines.push(['info', l]), warn: (l) => lines.push(['warn', l]) }
  const metrics = new MetricsTelemetry()
  const limiter = new RateLimiter({
    store: new InMemoryStore({ sweepInterval: 0 }),
    clock,
    onWarning: () => {},
    policy: {
      name: c.name,
      limit: c.limit,
      window: c.window,
      ...(c.burst !== undefined ? { burst: c.burst } : {}),
      ...(c.algorithm ? { algorithm: c.algorithm } : {}),
      ...(c.block_duration ? { blockDuration: c.block_duration } : {}),
      ...(c.key_strategy ? { keyStrategy: c.key_strategy } : {}),
    },
    apiKeySecret: c.api_key_secret,
    nearLimit: c.near_limit,
    telemetry: [new LoggingTelemetry({ logger, timeZone: 'utc', clock }), metrics],
  })
  for (const s of input.steps) {
    now += s.advance
    const options = s.cost === null ? undefined : { cost: s.cost }
    if (s.key !== null) limiter.check(s.key, options)
    else limiter.check({ ip: s.peer ?? undefined, method: 'GET', path: s.path, header: (name) => s.headers[name], user: undefined }, options)
  }
  const { latency, ...snapshot } = metrics.snapshot()
  return { lines, snapshot }
})
process.stdout.write(JSON.stringify(out))
