// One contender, one measurement, in a fresh process (no JIT or heap sharing between contenders).
// Usage: node --expose-gc core-worker.mjs <contender> <hot|distinct|memory>; prints one JSON line.
import { MemoryStore } from 'express-rate-limit'
import { InMemoryStore, RateLimiter } from 'halt'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import { heapUsed } from './lib.mjs'

export const KEYS = 1_000_000
const HOT_N = 3_000_000
// On the hot key nothing may be rejected (we measure the admission path); on 1M keys each key is hit
// at most twice, under a realistic limit, so every key stays live (a key that refilled could be reclaimed).
const LIMIT = process.argv[3] === 'hot' ? 1e12 : 100
const WINDOW_S = 60

export const contenders = {
  'bare Map counter': () => {
    const m = new Map()
    const W = WINDOW_S * 1000
    return {
      sync: true,
      check(key) {
        const now = Date.now()
        const e = m.get(key)
        if (e === undefined || now - e.windowStart >= W) {
          m.set(key, { windowStart: now, count: 1 })
          return true
        }
        return ++e.count <= LIMIT
      },
    }
  },
  'express-rate-limit MemoryStore': () => {
    const s = new MemoryStore()
    s.init({ windowMs: WINDOW_S * 1000 })
    clearInterval(s.interval)
    return { sync: false, check: (key) => s.increment(key) }
  },
  'rate-limiter-flexible Memory': () => {
    const l = new RateLimiterMemory({ points: LIMIT, duration: WINDOW_S })
    return { sync: false, check: (key) => l.consume(key, 1) }
  },
  ...Object.fromEntries(
    ['token_bucket', 'gcra', 'fixed_window', 'sliding_window', 'leaky_bucket'].map((algorithm) => [
      `halt ${algorithm}`,
      () => {
        const store = new InMemoryStore({ sweepInterval: 0, maxKeys: 2 * KEYS })
        const l = new RateLimiter({ store, policy: { name: 'b', limit: LIMIT, window: WINDOW_S, algorithm } })
        // Off the hot key each check takes half the bucket, so no key refills (and is reclaimed) mid-run.
        const opts = LIMIT === 100 ? { cost: 50 } : undefined
        return { sync: true, check: (key) => l.check(key, opts).allowed }
      },
    ]),
  ),
}

async function loop(c, n, keyAt) {
  if (c.sync) {
    let ok = 0
    for (let i = 0; i < n; i++) if (c.check(keyAt(i))) ok++
    return ok
  }
  for (let i = 0; i < n; i++) await c.check(keyAt(i))
  return n
}

function rate(n, t0) {
  return n / (Number(process.hrtime.bigint() - t0) / 1e9)
}

if (process.argv[1]?.endsWith('core-worker.mjs')) {
  const [name, mode] = process.argv.slice(2)
  const make = contenders[name]
  if (!make) throw new Error(`unknown contender ${name}`)
  // Keys are made as a server would: a fresh string per request (so the heap figure includes them).
  const keyAt = (i) => `203.0.${(i >> 16) & 255}.${i & 255}.${i >> 8}`
  let result
  if (mode === 'hot') {
    const c = make()
    await loop(c, 300_000, () => 'ip:203.0.113.7') // warm up the JIT
    const t0 = process.hrtime.bigint()
    await loop(c, HOT_N, () => 'ip:203.0.113.7')
    result = { opsPerSec: rate(HOT_N, t0) }
  } else if (mode === 'distinct') {
    const c = make()
    let t0 = process.hrtime.bigint()
    await loop(c, KEYS, keyAt)
    const first = rate(KEYS, t0)
    t0 = process.hrtime.bigint()
    await loop(c, KEYS, keyAt)
    result = { first, again: rate(KEYS, t0) }
  } else if (mode === 'memory') {
    const before = heapUsed()
    const c = make()
    await loop(c, KEYS, keyAt)
    const after = heapUsed()
    result = { bytesPerKey: (after - before) / KEYS, alive: await c.check('probe') }
  } else {
    throw new Error(`unknown mode ${mode}`)
  }
  console.log(JSON.stringify(result))
  process.exit(0)
}
