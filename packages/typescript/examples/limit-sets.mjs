// Limit sets and shadow mode: 10 per second AND 50 per day in one decision, plus a stricter policy tried in shadow.
// A simulated clock runs three busy seconds, then the next day, in an instant: node examples/limit-sets.mjs
import { InMemoryStore, RateLimiter, rateLimitHeaders } from 'halt'

let now = Date.UTC(2026, 0, 1, 9, 0, 0)
const shadowBlocked = new Map()
const limiter = new RateLimiter({
  store: new InMemoryStore(),
  clock: () => now,
  policy: [
    { name: 'per_second', limit: 10, window: 1, algorithm: 'sliding_window' },
    { name: 'per_day', limit: 50, window: '1d', algorithm: 'fixed_window' },
    // The candidate: 20 per minute. In shadow it blocks nobody; telemetry says whom it would block.
    { name: 'per_minute_trial', limit: 20, window: '1m', algorithm: 'fixed_window', mode: 'shadow' },
  ],
  nearLimit: 0.8,
  telemetry: {
    onBlocked(e) {
      if (e.shadow) shadowBlocked.set(e.decision.policy, (shadowBlocked.get(e.decision.policy) ?? 0) + 1)
    },
    onNearLimit(e) {
      console.log(`  near_limit policy=${e.decision.policy}${e.shadow ? ' (shadow)' : ''} key=${e.key} remaining=${e.decision.remaining}`)
    },
  },
})

function second(label, requests) {
  const passed = []
  const rejected = new Map()
  for (let i = 0; i < requests; i++) {
    const d = limiter.check('user:42')
    if (d.allowed) passed.push(d)
    else rejected.set(d.policy, (rejected.get(d.policy) ?? 0) + 1)
    now += Math.floor(1000 / requests)
  }
  const by = [...rejected].map(([p, n]) => `${n} by ${p}`).join(', ') || 'none'
  const last = limiter.peek('user:42').policies.map((p) => `${p.policy}=${p.remaining}${p.shadow ? ' (shadow)' : ''}`)
  console.log(`${label}: ${requests} requests, ${passed.length} passed, rejected: ${by}; remaining ${last.join(' ')}`)
}

console.log('policies: per_second 10/1s (sliding window) AND per_day 50/day (fixed window); per_minute_trial 20/min in shadow\n')
second('second 1', 15)
second('second 2', 15)
second('second 3', 15)
now += 1000
second('second 5', 30)
now += 86_400_000
second('next day', 5)

const d = limiter.check('user:42')
console.log('\nheaders of the last decision (standard: the binding policy):', rateLimitHeaders(d))
const h = {}
limiter.writeHeaders(d, 'ietf', h, (o, name, value) => {
  o[name] = value
})
console.log("headers: 'ietf' (one list item per enforced policy):", h)
console.log('\nthe shadow policy would have blocked:', Object.fromEntries(shadowBlocked))
console.log('stats:', limiter.stats())
