// Bench helpers: timing loops, medians, alternating rounds, markdown tables.
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Time `fn(n)` (sync or async): returns operations per second. */
export async function opsPerSec(fn, n) {
  const t0 = process.hrtime.bigint()
  const r = fn(n)
  if (r && typeof r.then === 'function') await r
  const dt = Number(process.hrtime.bigint() - t0) / 1e9
  return n / dt
}

/**
 * Run every contender `rounds` times, alternating (a b c a b c ...) so that
 * drift in machine speed hits all alike; returns name -> median ops/s.
 */
export async function alternate(contenders, { rounds = 7, n }) {
  const results = new Map(contenders.map((c) => [c.name, []]))
  for (const c of contenders) await opsPerSec(c.run, Math.min(n, 200_000)) // warm up (JIT)
  for (let r = 0; r < rounds; r++) {
    for (const c of contenders) results.get(c.name).push(await opsPerSec(c.run, n))
  }
  return new Map([...results].map(([k, v]) => [k, median(v)]))
}

export function fmtRate(x) {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)}M/s` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k/s` : `${x.toFixed(0)}/s`
}

export function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

/** Bytes held by JavaScript: the heap plus ArrayBuffer backing stores (typed arrays live off-heap). */
export function heapUsed() {
  global.gc()
  global.gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}
