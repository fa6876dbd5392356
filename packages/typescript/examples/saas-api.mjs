// Example: a SaaS API on Halt: plans from a user table, a monthly quota per plan, penalties for abusers, Prometheus metrics.
// Run: npm run example:saas (from the repository root), then try the curl commands it prints.
import express from 'express'
import { definePlans, InMemoryStore, LoggingTelemetry, PenaltyManager, QuotaManager, RateLimiter } from 'halt'
import { haltMiddleware } from 'halt/express'
import { PrometheusTelemetry } from 'halt/prometheus'
import { register } from 'prom-client' // an optional peer dependency of halt: npm install prom-client

const PORT = Number(process.env.PORT ?? 3001)

// The user table. In a product this is your database (cache the lookup: it runs on every request).
const users = new Map([
  ['sk_test_alice', { id: 'alice', plan: 'free' }],
  ['sk_test_carol', { id: 'carol', plan: 'trial' }],
  ['sk_test_bob', { id: 'bob', plan: 'pro' }],
])

// Plans: a rate limit each (per user: keyStrategy 'user' reads req.user.id), and a monthly quota (resets on the 1st, 00:00 UTC).
const perUser = { keyStrategy: 'user', window: '1m' }
const plans = definePlans(
  {
    free: { policy: { ...perUser, name: 'plan_free', limit: 5 }, quota: { name: 'calls_free', limit: 1_000, period: 'monthly' } },
    trial: { policy: { ...perUser, name: 'plan_trial', limit: 20 }, quota: { name: 'calls_trial', limit: 3, period: 'monthly' } },
    pro: { policy: { ...perUser, name: 'plan_pro', limit: 100 }, quota: { name: 'calls_pro', limit: 100_000, period: 'monthly' } },
  },
  { defaultPlan: 'free' },
)
const planOf = (req) => req.user?.plan

const store = new InMemoryStore() // one Redis (halt/redis) instead, and every instance shares limits, quotas and penalties
const telemetry = [new LoggingTelemetry(), new PrometheusTelemetry()]
const limiter = new RateLimiter({
  store,
  policy: plans.resolver(planOf),
  defaultPolicy: plans.policy('free'),
  // An abuser: every rejection adds 1 to the user's abuse score (decaying 3 points an hour); at 3, their limit halves for 1 minute,
  // then 2, 4, ... minutes for repeat offences.
  penalties: new PenaltyManager({ store, config: { threshold: 3, duration: '1m', multiplier: 0.5, decayRate: 3 } }),
  // One log line per decision, and Prometheus metrics (served on /metrics below).
  telemetry,
  exemptPrivateIps: false, // curl from this machine is limited too
})
// Quota decisions go to the same sinks: an exhausted quota is a line and a halt_decisions_total{reason="quota"}.
const quotas = new QuotaManager(store, { telemetry })

const app = express()
app.get('/metrics', async (_req, res) => {
  res.type(register.contentType).send(await register.metrics())
})
app.use('/api', (req, res, next) => {
  req.user = users.get(req.get('x-api-key') ?? '')
  if (req.user === undefined) return res.status(401).json({ error: 'unknown_api_key' })
  next()
})
// The plan's rate limit first, then its monthly quota (429 "quota_exceeded" with the reset time when used up).
app.use('/api', haltMiddleware(limiter, { quota: { manager: quotas, quota: plans.quotaResolver(planOf) } }))
app.get('/api/report', (req, res) => {
  res.json({ user: req.user.id, plan: req.user.plan, report: 'ok' })
})

const server = app.listen(PORT, () => {
  const url = `http://localhost:${server.address().port}`
  console.log(`SaaS API on ${url}, limited by Halt: plans free (5/min), trial (20/min, 3 calls a month), pro (100/min).
Try, in another terminal:
  curl -i -H 'X-API-Key: sk_test_bob' ${url}/api/report        # pro: 200, RateLimit-Limit: 100
  for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' -H 'X-API-Key: sk_test_alice' ${url}/api/report; done; echo
                                                                      # free: 5 x 200, then 429; after 3 rejections, a penalty
  for i in $(seq 4); do curl -s -H 'X-API-Key: sk_test_carol' ${url}/api/report; echo; done
                                                                      # trial: the 4th call of the month is quota_exceeded
  curl -s ${url}/metrics | grep halt_                                 # Prometheus metrics
Ctrl-C to stop.
`)
})
process.on('SIGINT', () => server.close(() => process.exit(0)))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
