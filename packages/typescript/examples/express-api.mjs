// Example: an Express API limited by Halt (in-memory store, presets.PUBLIC_API), logging one line per decision with LoggingTelemetry.
// Run: npm run example (from the repository root), then try the curl commands it prints.
// On Redis, shared by several processes: REDIS_URL=redis://127.0.0.1:6379 node examples/cluster.mjs examples/express-api.mjs
import { randomBytes } from 'node:crypto'
import express from 'express'
import { InMemoryStore, LoggingTelemetry, presets, RateLimiter } from 'halt'
import { haltMiddleware } from 'halt/express'

const PORT = Number(process.env.PORT ?? 3000)
// With REDIS_URL, a RedisStore: every process of the API shares one limit per client.
const store = process.env.REDIS_URL ? await redisStore(process.env.REDIS_URL) : new InMemoryStore()

const limiter = new RateLimiter({
  store,
  policy: presets.PUBLIC_API, // 100 requests per minute per client, bursts of 120
  // Pretend a reverse proxy runs on this machine: believe X-Forwarded-For from loopback only.
  trustedProxies: ['loopback'],
  // One line per decision (admissions to console.info, rejections to console.warn); req_id from X-Request-Id.
  telemetry: new LoggingTelemetry(),
})

const app = express()
app.use((req, _res, next) => {
  // A request id, as an app's own middleware (or the proxy in front) would set it.
  req.headers['x-request-id'] ??= randomBytes(2).toString('hex').slice(0, 3)
  next()
})
app.use(haltMiddleware(limiter))
app.get('/api/hello', (_req, res) => {
  res.json({ hello: 'world' })
})
app.get('/health', (_req, res) => {
  res.send('ok')
})

const server = app.listen(PORT, () => {
  const url = `http://localhost:${server.address().port}`
  console.log(`Express API on ${url}, limited by Halt: policy ${presets.PUBLIC_API.name} (100/min, burst 120) per client address.
Try, in another terminal:
  curl -i -H 'X-Forwarded-For: 203.0.113.7' ${url}/api/hello        # 200 with RateLimit-* headers
  for i in $(seq 125); do curl -s -o /dev/null -w '%{http_code} ' -H 'X-Forwarded-For: 203.0.113.7' ${url}/api/hello; done; echo
  curl -i -H 'X-Forwarded-For: 203.0.113.7' ${url}/api/hello        # 429, Retry-After and a JSON body
  curl -i ${url}/health                                              # exempt: no headers
Ctrl-C to stop.
`)
})
async function redisStore(url) {
  const [{ Redis }, { RedisStore, ioredisOptions }] = await Promise.all([import('ioredis'), import('halt/redis')])
  return new RedisStore({ client: new Redis(url, ioredisOptions) })
}

process.on('SIGINT', () => server.close(() => process.exit(0)))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
