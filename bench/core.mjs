// In-process benchmark: checks/s on one hot key and on 1M distinct keys, and heap bytes per key at
// 1M keys, for every Halt algorithm beside rate-limiter-flexible's RateLimiterMemory, express-rate-limit's
// MemoryStore and a bare Map fixed-window counter (the physical reference). Each measurement runs in a
// fresh process; rounds alternate between contenders; medians are reported.
// Run from the repository root: npm run bench:core
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { contenders } from './core-worker.mjs'
import { fmtRate, median, table } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const names = Object.keys(contenders)
const HOT_ROUNDS = Number(process.env.HOT_ROUNDS ?? 5)
const DISTINCT_ROUNDS = Number(process.env.DISTINCT_ROUNDS ?? 3)

function measure(name, mode) {
  const out = execFileSync(process.execPath, ['--expose-gc', '--max-old-space-size=4096', join(here, 'core-worker.mjs'), name, mode], { encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').pop())
}

console.log(`node ${process.version}; ${HOT_ROUNDS} hot-key rounds, ${DISTINCT_ROUNDS} rounds on 1M keys, alternating; medians\n`)
const hot = new Map(names.map((n) => [n, []]))
const first = new Map(names.map((n) => [n, []]))
const again = new Map(names.map((n) => [n, []]))
const bytes = new Map()
for (let r = 0; r < HOT_ROUNDS; r++) for (const n of names) hot.get(n).push(measure(n, 'hot').opsPerSec)
for (let r = 0; r < DISTINCT_ROUNDS; r++) {
  for (const n of names) {
    const d = measure(n, 'distinct')
    first.get(n).push(d.first)
    again.get(n).push(d.again)
  }
}
for (const n of names) bytes.set(n, measure(n, 'memory').bytesPerKey)

const m = (map, n) => median(map.get(n))
const bare = m(hot, 'bare Map counter')
const rlf = m(hot, 'rate-limiter-flexible Memory')
const erl = m(hot, 'express-rate-limit MemoryStore')
console.log(
  table(
    ['contender', '1 hot key', 'vs bare Map', 'vs rate-limiter-flexible', '1M keys, first touch', '1M keys, again', 'heap per key at 1M keys'],
    names.map((n) => [
      n,
      fmtRate(m(hot, n)),
      `${((m(hot, n) / bare) * 100).toFixed(0)}%`,
      `${(m(hot, n) / rlf).toFixed(2)}x`,
      fmtRate(m(first, n)),
      fmtRate(m(again, n)),
      `${bytes.get(n).toFixed(0)} B`,
    ]),
  ),
)
const tb = m(hot, 'halt token_bucket')
const fw = m(hot, 'halt fixed_window')
const targets = [
  ['token bucket, 1 hot key: at least 50% of the bare Map counter', tb / bare >= 0.5, `${((tb / bare) * 100).toFixed(0)}%`],
  ['token bucket, 1 hot key: at least 2.5x rate-limiter-flexible', tb / rlf >= 2.5, `${(tb / rlf).toFixed(2)}x`],
  ['fixed window, 1 hot key: at least express-rate-limit MemoryStore', fw >= erl, `${(fw / erl).toFixed(2)}x`],
  ['token bucket: at most 150 B per key at 1M keys', bytes.get('halt token_bucket') <= 150, `${bytes.get('halt token_bucket').toFixed(0)} B`],
]
console.log(
  `\n${table(
    ['target', 'met', 'measured'],
    targets.map(([t, ok, v]) => [t, ok ? 'yes' : 'NO', v]),
  )}`,
)
