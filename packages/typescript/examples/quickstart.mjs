// Quickstart: one limiter on the in-memory store, a burst of calls, the decisions they get.
import { InMemoryStore, presets, RateLimitExceeded, RateLimiter } from 'halt'

const limiter = new RateLimiter({ store: new InMemoryStore(), policy: { ...presets.STRICT_API, burst: 5, limit: 5, window: 10 } })

console.log('policy: 5 requests per 10 s (token bucket) for key ip:203.0.113.7\n')
for (let i = 1; i <= 7; i++) {
  const d = limiter.check('ip:203.0.113.7')
  const verdict = d.allowed ? 'pass ' : 'limit'
  console.log(`request ${i}: check=${verdict} remaining=${d.remaining} retry_after=${d.retryAfter}s reset_at=${new Date(d.resetAt * 1000).toISOString()}`)
}

// The same limiter guarding a function:
const sendEmail = limiter.wrap(
  (to) => `sent to ${to}`,
  (to) => `email:${to}`,
)
try {
  for (let i = 0; i < 6; i++) sendEmail('ada@example.com')
} catch (e) {
  if (e instanceof RateLimitExceeded) console.log(`\nwrap(): ${e.message}`)
  else throw e
}
console.log('\nstats:', limiter.stats())
