// Memory under a key-space flood: 10M random client addresses (IPv4 and IPv6) through the HTTP layer into the
// in-memory store, each configuration in a fresh process. Reports the keys held (never above maxKeys), peak RSS and
// the heap at the end. Run: npm run bench:flood -w halt-bench (HALT_FLOOD_N to change the count).
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { InMemoryStore, RateLimiter } from 'halt'
import { fmtRate, table } from './lib.mjs'

const N = Number(process.env.HALT_FLOOD_N ?? 10_000_000)
const CONFIGS = [
  { maxKeys: 100_000, family: 'mixed' },
  { maxKeys: 1_000_000, family: 'mixed' }, // the default cap
  { maxKeys: 1_000_000, family: 'ipv6' },
]

/** One configuration, in this process: flood, sample memory, print one JSON line. */
function flood({ maxKeys, family }) {
  const store = new InMemoryStore({ maxKeys })
  // 10 per hour: a key stays live for minutes, so the cap, not expiry, bounds memory.
  const policy = { name: 'flood', limit: 10, window: '1h' }
  const limiter = new RateLimiter({ store, policy, exemptPrivateIps: false, onWarning: () => {} })
  let ip = ''
  const view = { ip: '', method: 'GET', path: '/api', header: () => undefined }
  let seed = 0x9e3779b9
  const rnd = () => {
    // xorshift32: cheap, deterministic, every address different enough
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return seed >>> 0
  }
  let peakRss = 0
  let maxSize = 0
  let blocked = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    if (family === 'ipv6' || (family === 'mixed' && i & 1)) {
      const a = rnd()
      ip = `2001:db8:${(a >>> 16).toString(16)}:${(a & 0xffff).toString(16)}::${(rnd() & 0xffff).toString(16)}`
    } else {
      const a = rnd()
      ip = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`
    }
    view.ip = ip
    if (!limiter.check(view).allowed) blocked++
    if ((i & 0x3ffff) === 0) {
      peakRss = Math.max(peakRss, process.memoryUsage.rss())
      maxSize = Math.max(maxSize, store.size())
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  peakRss = Math.max(peakRss, process.memoryUsage.rss())
  maxSize = Math.max(maxSize, store.size())
  global.gc()
  const m = process.memoryUsage()
  return { maxKeys, family, n: N, rate: N / seconds, maxSize, finalSize: store.size(), peakRss, heap: m.heapUsed + m.arrayBuffers, blocked }
}

if (process.argv[2] === '--one') {
  console.log(JSON.stringify(flood(JSON.parse(process.argv[3]))))
} else {
  const self = fileURLToPath(import.meta.url)
  const rows = []
  for (const c of CONFIGS) {
    const out = execFileSync(process.execPath, ['--expose-gc', self, '--one', JSON.stringify(c)], { encoding: 'utf8', maxBuffer: 1 << 20 })
    const r = JSON.parse(out.trim().split('\n').pop())
    const mb = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`
    rows.push([
      r.family,
      r.maxKeys.toLocaleString('en'),
      r.n.toLocaleString('en'),
      fmtRate(r.rate),
      r.maxSize.toLocaleString('en'),
      r.maxSize <= r.maxKeys ? 'yes' : 'NO',
      mb(r.peakRss),
      mb(r.heap),
      `${Math.round(r.heap / r.finalSize)} B`,
    ])
    console.error(`flood ${JSON.stringify(c)} done`)
  }
  const md = `# Key-space flood: ${N.toLocaleString('en')} random client addresses into the in-memory store

node ${process.version}; through \`limiter.check(RequestView)\` (address parsing, IPv6 /64 keying, store); each row a fresh process.

${table(['addresses', 'maxKeys', 'checks', 'checks/s', 'most keys held', 'within cap', 'peak RSS', 'heap + typed arrays at the end', 'per key held'], rows)}
`
  console.log(md)
  writeFileSync(new URL('./results/flood.md', import.meta.url), md)
}
