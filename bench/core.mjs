// In-process benchmark: checks/s on one hot key and on 1M distinct keys, and heap bytes per key at
// 1M keys, for every Halt algorithm beside rate-limiter-flexible's RateLimiterMemory,
// express-rate-limit's MemoryStore and a bare Map fixed-window counter (the physical reference).
// Run: npm run bench (from the repository root). Needs --expose-gc.
import { MemoryStore } from 'express-rate-limit'
import { InMemoryStore, RateLimiter } from 'halt'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import { alternate, fmtRate, heapUsed, table } from './lib.mjs'

const KEYS = 1_000_000
const HOT_N = 2_000_000
const keys = Array.from({ length: KEYS }, (_, i) => `203.0.${(i >> 16) & 255}.${i & 65535}`)
const ALGORITHMS = ['token_bucket', 'gcra', 'fixed_window', 'sliding_window', 'leaky_bucket']
// Limits high enough that nothing is rejected: we measure the admission path.
const LIMIT = 1e12
const WINDOW_S = 60

/** Each factory returns { check(key) -> sync or promise } over a fresh store. */
const factories = {
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
    ALGORITHMS.map((algorithm) => [
      `halt ${algorithm}`,
      () => {
        const l = new RateLimiter({
          store: new InMemoryStore({ sweepInterval: 0, maxKeys: 2 * KEYS }),
          policy: { name: 'b', limit: LIMIT, window: WINDOW_S, algorithm },
        })
        return { sync: true, check: (key) => l.check(key) }
      },
    ]),
  ),
}

function loopOver(c, keyAt) {
  if (c.sync) {
    return (n) => {
      let ok = 0
      for (let i = 0; i < n; i++) if (c.check(keyAt(i))) ok++
      return ok
    }
  }
  return async (n) => {
    for (let i = 0; i < n; i++) await c.check(keyAt(i))
  }
}

const names = Object.keys(factories)
console.log(`node ${process.version}, ${names.length} contenders, medians of alternating rounds\n`)

// 1. One hot key.
const hot = await alternate(
  names.map((name) => {
    const c = factories[name]()
    return { name, run: loopOver(c, () => 'ip:203.0.113.7') }
  }),
  { n: HOT_N, rounds: 7 },
)

// 2. 1M distinct keys: first touch (inserts) then again (updates), fresh store per round.
const distinct = new Map()
for (const name of names) {
  const first = []
  const again = []
  for (let r = 0; r < 3; r++) {
    const c = factories[name]()
    const run = loopOver(c, (i) => keys[i])
    let t0 = process.hrtime.bigint()
    await run(KEYS)
    first.push(KEYS / (Number(process.hrtime.bigint() - t0) / 1e9))
    t0 = process.hrtime.bigint()
    await run(KEYS)
    again.push(KEYS / (Number(process.hrtime.bigint() - t0) / 1e9))
  }
  distinct.set(name, { first: first.sort((a, b) => a - b)[1], again: again.sort((a, b) => a - b)[1] })
}

// 3. Heap bytes per key at 1M keys (the key strings themselves are shared and not counted).
const bytes = new Map()
for (const name of names) {
  let c = null
  const before = heapUsed()
  c = factories[name]()
  await loopOver(c, (i) => keys[i])(KEYS)
  const after = heapUsed()
  bytes.set(name, (after - before) / KEYS)
  if (!c) throw new Error('unreachable')
  c = null
}

const bare = hot.get('bare Map counter')
const rlf = hot.get('rate-limiter-flexible Memory')
const rows = names.map((name) => [
  name,
  fmtRate(hot.get(name)),
  `${((hot.get(name) / bare) * 100).toFixed(0)}%`,
  `${(hot.get(name) / rlf).toFixed(2)}x`,
  fmtRate(distinct.get(name).first),
  fmtRate(distinct.get(name).again),
  `${bytes.get(name).toFixed(0)} B`,
])
console.log(table(['contender', '1 hot key', 'vs bare Map', 'vs rate-limiter-flexible', '1M keys, first touch', '1M keys, again', 'heap per key at 1M'], rows))

const tb = hot.get('halt token_bucket')
const checks = [
  [`token bucket, hot key >= 50% of bare Map counter`, tb / bare >= 0.5, `${((tb / bare) * 100).toFixed(0)}%`],
  [`token bucket, hot key >= 2.5x rate-limiter-flexible`, tb / rlf >= 2.5, `${(tb / rlf).toFixed(2)}x`],
  [
    `fixed window, hot key >= express-rate-limit MemoryStore`,
    hot.get('halt fixed_window') >= hot.get('express-rate-limit MemoryStore'),
    `${(hot.get('halt fixed_window') / hot.get('express-rate-limit MemoryStore')).toFixed(2)}x`,
  ],
  [`token bucket <= 150 B per key at 1M keys`, bytes.get('halt token_bucket') <= 150, `${bytes.get('halt token_bucket').toFixed(0)} B`],
]
console.log(
  `\n${table(
    ['target', 'met', 'measured'],
    checks.map(([t, ok, m]) => [t, ok ? 'yes' : 'NO', m]),
  )}`,
)
