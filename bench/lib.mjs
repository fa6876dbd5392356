// Bench helpers: timing loops, medians, alternating rounds, markdown tables, servers of a run's own.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
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

/**
 * CPU microseconds a server has used: the process in the first line of `pidFile` and its children (PostgreSQL's
 * backends), from /proc. What a check costs the server, which other load on the machine moves far less than rates.
 */
export function treeCpuUs(pidFile) {
  const root = readFileSync(pidFile, 'utf8').split('\n')[0].trim()
  let ticks = 0
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    let stat
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    } catch {
      continue // gone meanwhile
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // f[1] ppid, f[11] utime, f[12] stime
    if (pid === root || f[1] === root) ticks += Number(f[11]) + Number(f[12])
  }
  return ticks * (1e6 / 100) // USER_HZ is 100 on Linux
}

/**
 * Servers of this run's own: `services(...args)` runs scripts/services.sh in a state directory made for the run;
 * `stop()` (also on SIGINT/SIGTERM) stops them and removes it (`dir`).
 */
export function ownServices(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'halt-bench-'))
  chmodSync(dir, 0o755) // PostgreSQL runs as its own OS user: its cluster then lives in here, and goes with it
  const services = (...args) =>
    promisify(execFile)('bash', [join(ROOT, 'scripts/services.sh'), ...args], { env: { ...process.env, HALT_SERVICES_DIR: dir, ...env } })
  let stopped = false
  async function stop() {
    if (stopped) return
    stopped = true
    await services('stop').catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stop().then(() => process.exit(130)))
  return { services, stop, dir }
}

/**
 * A Redis of this run's own (no persistence): its URL and port, `connect(options)` for ioredis clients that are
 * ready when it resolves (all kept in `clients`), and `stop()`.
 */
export async function ownRedis() {
  const { services, stop } = ownServices({ HALT_REDIS_EXTRA_ARGS: '--appendonly no' })
  const { stdout } = await services('start', 'redis')
  const url = /HALT_TEST_REDIS_URL='?([^'\n]+)/.exec(stdout)[1]
  const port = /HALT_TEST_REDIS_PORT=(\d+)/.exec(stdout)[1]
  const clients = []
  const connect = async (options) => {
    const c = new Redis(url, options)
    c.on('error', () => {})
    clients.push(c)
    await once(c, 'ready')
    return c
  }
  return { url, port, clients, connect, stop }
}
