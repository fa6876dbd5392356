// Paired HTTP load test: each contender against its framework's bare server, both alive at once, in short alternating
// wrk slices (A B, B A, ...), with the ratio taken per pair. Slow drift of the machine (measured here: the same bare
// Fastify server from 30 to 65 µs of CPU per request within minutes) hits both sides of a pair alike, and the A/A row
// (bare against a second bare server) shows how far apart two identical servers measure. Run: node http-pair.mjs
// (after npm run build -w halt). Options: --pairs <n> (default 16), --slice <s> (default 2), --only <a,b> (contenders
// whose name contains one of them; the A/A rows always run).
import { availableParallelism, loadavg } from 'node:os'
import { ensureWrk, load, pin, SERVERS, start } from './http.mjs'
import { table } from './lib.mjs'

const opt = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : dflt
}
const pairs = Number(opt('pairs', 16))
const slice = Number(opt('slice', 2))
const only = opt('only', '').split(',')
if (!ensureWrk()) throw new Error('http-pair.mjs needs wrk (apt-get install wrk)')
const pinned = availableParallelism() >= 2 && pin(1, process.pid)
const server = pinned ? 0 : undefined
const gen = pinned ? 1 : undefined

const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.round(q * (xs.length - 1))]
const pct = (x) => `${(100 * x).toFixed(1)}%`
const spread = (xs) => `${pct(quantile(xs, 0.5))} (${pct(quantile(xs, 0.25))}-${pct(quantile(xs, 0.75))})`

/** Per-pair ratios of `name` to `bare`: req/s (this / bare) and CPU per request (bare / this). */
async function paired(bare, name) {
  const a = await start(bare, server)
  const b = await start(name, server)
  try {
    for (const s of [a, b]) await load('wrk', s, 2, 50, gen) // warm-up (JIT)
    const rps = []
    const cpu = []
    for (let i = 0; i < pairs; i++) {
      const first = i % 2 === 0 ? a : b
      const x = await load('wrk', first, slice, 50, gen)
      const y = await load('wrk', first === a ? b : a, slice, 50, gen)
      const [ra, rb] = first === a ? [x, y] : [y, x]
      rps.push(rb.rps / ra.rps)
      cpu.push(ra.cpu / rb.cpu)
    }
    return { rps, cpu }
  } finally {
    a.child.kill()
    b.child.kill()
  }
}

console.log(`node ${process.version}, wrk 50 connections, ${pairs} pairs of ${slice} s slices per row; load average at the start ${loadavg()[0].toFixed(1)}`)
const rows = []
for (const bare of ['express bare', 'fastify bare']) {
  const framework = bare.split(' ')[0]
  const names = Object.keys(SERVERS).filter((n) => n.startsWith(framework) && n !== bare && only.some((o) => n.includes(o)))
  for (const name of [bare, ...names]) {
    const r = await paired(bare, name)
    rows.push([name === bare ? `${bare} (A/A: a second bare server)` : name, spread(r.rps), spread(r.cpu)])
    process.stderr.write(`${name} done\n`)
  }
}
console.log(`load average at the end ${loadavg()[0].toFixed(1)}\n`)
console.log(table(['contender', 'vs bare, req/s: median (quartiles)', 'vs bare, CPU per request: median (quartiles)'], rows))
