// Redis at 1 in flight: where the floor is. Halt's scripts, a prototype Functions library (prototypes/redis-lean)
// and scripts that only move a state (no algorithm), beside rate-limiter-flexible's script, raw on one ioredis
// connection and through the limiters. Checks first that the prototype answers every spec vector exactly as
// spec/redis/*.lua does. Starts its own redis-server with scripts/services.sh and stops it.
// Run from the repository root: npm run build && node bench/redis-floor.mjs   (BENCH_ROUNDS, BENCH_MS)
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { RateLimiter } from 'halt'
import { ioredisOptions, RedisStore, SCRIPTS, SHA1 } from 'halt/redis'
import { RateLimiterRedis } from 'rate-limiter-flexible'
import { fmtRate, median, ownRedis, table } from './lib.mjs'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15)
const ROUND_MS = Number(process.env.BENCH_MS ?? 400)
const BIG = 1e12 // limits nobody reaches: the admission path is measured
const KEYS = Array.from({ length: 10_000 }, (_, i) => `ip:10.0.${i >> 8}.${i & 255}`)
const ALGORITHMS = ['token_bucket', 'gcra', 'fixed_window', 'sliding_window', 'leaky_bucket']
// rate-limiter-flexible's script, as RateLimiterRedis sends it.
const RLF_SCRIPT =
  "redis.call('set', KEYS[1], 0, 'EX', ARGV[2], 'NX') local consumed = redis.call('incrby', KEYS[1], ARGV[1]) local ttl = redis.call('pttl', KEYS[1]) if ttl == -1 then redis.call('expire', KEYS[1], ARGV[2]) ttl = 1000 * ARGV[2] end return {consumed, ttl}"

/** The prototype library: prototypes/redis-lean/library.lua with every algorithm's part, and floors beside it. */
function library() {
  const src = readFileSync(join(ROOT, 'bench/prototypes/redis-lean/library.lua'), 'utf8')
  const parts = ALGORITHMS.map((name) => {
    const part = readFileSync(join(ROOT, `spec/redis/src/${name}.lua`), 'utf8')
    return `FACTORIES['${name}'] = function(L, Wms, B, P, SHAPING)\n${part}return SIZE, init, step\nend\n`
  })
  const register = ALGORITHMS.map((name) => `redis.register_function('halt_lean_${name}', function(k, a) return run('${name}', k, a) end)`)
  // Floors: the state's I/O alone, no algorithm (a 24-byte value like a token bucket's), the same reply size.
  const V = "'abcdefghabcdefghabcdefgh'"
  const floors = [
    `redis.register_function('floor_get_set_px', function(k, a) redis.call('GET', k[1]) redis.call('SET', k[1], ${V}, 'PX', 60000) return {tonumber(a[1]), 0, 1, 2} end)`,
    `redis.register_function('floor_get_setrange', function(k, a) if redis.call('GET', k[1]) then redis.call('SETRANGE', k[1], 0, ${V}) else redis.call('SET', k[1], ${V}, 'PX', 60000) end return {tonumber(a[1]), 0, 1, 2} end)`,
    `redis.register_function('floor_none', function(k, a) return {tonumber(a[1]), 0, 1, 2} end)`,
  ]
  return `#!lua name=halt_lean_proto\n${src.replace('-- @algorithms\n', parts.join('\n'))}\n${register.join('\n')}\n${floors.join('\n')}\n`
}

/** The lean reply widened to the EVAL scripts' layout ({ now, then 7 values per key }). */
function widen(r) {
  const out = [r[0]]
  for (let i = 1; i < r.length; ) {
    if (r[i] === 0) {
      out.push(0, r[i + 1], r[i + 2], 0, 0, r[i + 2], 0)
      i += 3
    } else {
      out.push(r[i] === 4 ? 0 : r[i], r[i + 1], r[i + 2], r[i + 3], r[i + 4], r[i + 5], r[i + 6])
      i += 7
    }
  }
  return out
}

// ------------------------------------------------------------------ a Redis of our own

const { port: PORT, clients, connect, stop } = await ownRedis()
const admin = await connect({})

try {
  const version = (await admin.info('server')).match(/redis_version:(\S+)/)[1]
  await admin.call('FUNCTION', 'LOAD', 'REPLACE', library())
  for (const name of ALGORITHMS) await admin.script('LOAD', SCRIPTS[name])
  const rlfSha = await admin.script('LOAD', RLF_SCRIPT)
  const ruleOf = (limit, windowMs, burst = limit, blockMs = 0, precision = 10, shaping = false, grace = 0) =>
    [limit, windowMs, burst, blockMs, precision].map(String).concat(shaping ? '1' : '0', String(grace))
  console.log(`# Redis at 1 in flight: the floor\n\nnode ${process.version}, redis-server ${version} (no persistence) on loopback\n`)

  // ---------------------------------------------------------------- the prototype answers as the scripts do

  let steps = 0
  let batches = 0
  for (const file of readdirSync(join(ROOT, 'spec/vectors')).filter((f) => f.endsWith('.json'))) {
    const { algorithm, cases } = JSON.parse(readFileSync(join(ROOT, 'spec/vectors', file), 'utf8'))
    for (const [ci, c] of cases.entries()) {
      const p = c.policy
      // A grace of an hour: the vectors' TTLs are a few ms of the vectors' clock, and a key must not expire in real
      // time between two steps.
      const params = ruleOf(p.limit, p.window * 1000, p.burst ?? p.limit, (p.block_duration ?? 0) * 1000, p.precision ?? 10, p.shaping ?? false, 3_600_000)
      const costOf = (s) => (s.peek ? 'peek' : String(s.cost ?? 1))
      // One call per step, then the steps of one instant in one call (a batch on one key).
      for (const [mode, groups] of [
        ['single', c.steps.map((s) => [s])],
        ['batch', c.steps.reduce((g, s) => (g.length > 0 && g.at(-1)[0].t === s.t ? g.at(-1).push(s) : g.push([s]), g), [])],
      ]) {
        const a = `v:${mode}:{${algorithm}:${ci}}:a`
        const b = `v:${mode}:{${algorithm}:${ci}}:b`
        for (const group of groups) {
          const now = String(group[0].t)
          const costs = group.map(costOf)
          const want = await admin.evalsha(SHA1[algorithm], group.length, ...group.map(() => a), now, ...params, ...costs)
          const got = widen(await admin.call('FCALL', `halt_lean_${algorithm}`, group.length, ...group.map(() => b), now, params.join(','), ...costs))
          if (JSON.stringify(got) !== JSON.stringify(want)) {
            throw new Error(`${algorithm} "${c.name}" (${mode}) at ${now}: prototype ${JSON.stringify(got)} != script ${JSON.stringify(want)}`)
          }
          const ttlA = await admin.pttl(a)
          const ttlB = await admin.pttl(b)
          if (Math.abs(ttlA - ttlB) > 5) throw new Error(`${algorithm} "${c.name}": TTL ${ttlB} != ${ttlA}`)
          if (mode === 'single') steps++
          else batches++
        }
      }
    }
  }
  console.log(`The prototype's replies equal spec/redis/*.lua's on every vector step (${steps} single calls, ${batches} batched calls), TTLs alike.\n`)

  // ---------------------------------------------------------------- contenders

  const raw = await connect(ioredisOptions)
  const tbRule = ruleOf(BIG, 60_000)
  const rawCall = (fn) => (k) => raw.call('FCALL', fn, 1, `raw-${fn}:{${k}}`, String(Date.now()), tbRule.join(','), '1')
  const rawContenders = [
    ["rate-limiter-flexible's script", (k) => raw.evalsha(rlfSha, 1, `raw-rlf:${k}`, '1', '60')],
    ['halt token_bucket.lua (EVALSHA)', (k) => raw.evalsha(SHA1.token_bucket, 1, `raw-tb:{${k}}`, String(Date.now()), ...tbRule, '1')],
    ['halt fixed_window.lua (EVALSHA)', (k) => raw.evalsha(SHA1.fixed_window, 1, `raw-fw:{${k}}`, String(Date.now()), ...tbRule, '1')],
    ['prototype token_bucket (FCALL)', rawCall('halt_lean_token_bucket')],
    ['prototype fixed_window (FCALL)', rawCall('halt_lean_fixed_window')],
    ['floor: GET + SET PX, no algorithm', rawCall('floor_get_set_px')],
    ['floor: GET + SETRANGE in place, no TTL', rawCall('floor_get_setrange')],
    ['floor: nothing (FCALL, same arguments)', rawCall('floor_none')],
  ]

  /** A RedisStore whose script calls go to the prototype library (the reply widened for the store's decoder). */
  async function leanStore(prefix) {
    const c = await connect(ioredisOptions)
    const fn = new Map(ALGORITHMS.map((a) => [SHA1[a], `halt_lean_${a}`]))
    const call = (sha, keys, args) => c.call('FCALL', fn.get(sha), keys.length, ...keys, args[0], args.slice(1, 8).join(','), ...args.slice(8)).then(widen)
    const adapter = {
      cluster: false,
      evalsha: call,
      eval: () => Promise.reject(new Error('prototype: no EVAL')),
      del: (k) => c.del(k),
      deleteMatching: async () => 0,
    }
    const store = new RedisStore({ client: adapter, prefix })
    for (const a of ALGORITHMS) store.scripts[a].loaded = true // the library is loaded: FCALL from the first call
    return store
  }
  const haltLimiter = (store, algorithm) => {
    const l = new RateLimiter({ store, policy: { name: 'b', limit: BIG, window: 60, algorithm } })
    return (k) => l.check(k)
  }
  const rlf = new RateLimiterRedis({ storeClient: await connect({ enableOfflineQueue: false }), points: 1e9, duration: 60, keyPrefix: 'lim-rlf' })
  const limiterContenders = [
    ['rate-limiter-flexible RateLimiterRedis', (k) => rlf.consume(k)],
    ['halt token_bucket', haltLimiter(new RedisStore({ client: await connect(ioredisOptions), prefix: 'lim-tb:' }), 'token_bucket')],
    ['halt fixed_window', haltLimiter(new RedisStore({ client: await connect(ioredisOptions), prefix: 'lim-fw:' }), 'fixed_window')],
    ['halt token_bucket, prototype library', haltLimiter(await leanStore('lim-ltb:'), 'token_bucket')],
    ['halt fixed_window, prototype library', haltLimiter(await leanStore('lim-lfw:'), 'fixed_window')],
  ]

  /** Redis's microseconds in script and function calls (INFO commandstats). */
  const serverUsec = async () => {
    const info = await admin.info('commandstats')
    let usec = 0
    for (const c of ['evalsha', 'eval', 'fcall']) usec += Number(new RegExp(`cmdstat_${c}:calls=\\d+,usec=(\\d+)`).exec(info)?.[1] ?? 0)
    return usec
  }

  /** One check after another for `ms`: checks/s, Redis µs and this process's CPU µs per check. */
  async function sequential(check, keys, ms) {
    let n = 0
    const s0 = await serverUsec()
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    const end = t0 + ms
    for (let i = 0; performance.now() < end; i++, n++) await check(KEYS[i % keys])
    const rate = n / ((performance.now() - t0) / 1000)
    const cpu = process.cpuUsage(c0)
    return { rate, serverUs: ((await serverUsec()) - s0) / n, clientUs: (cpu.user + cpu.system) / n }
  }

  async function measure(title, contenders) {
    const rows = []
    for (const keys of [1, 10_000]) {
      const samples = new Map(contenders.map(([name]) => [name, []]))
      for (const [, check] of contenders) await sequential(check, keys, 200) // warm up
      for (let r = 0; r < ROUNDS; r++) {
        // Alternating, the order reversed every other round: drift on the machine hits every contender alike.
        const order = r % 2 === 0 ? contenders : [...contenders].reverse()
        for (const [name, check] of order) samples.get(name).push(await sequential(check, keys, ROUND_MS))
      }
      const base = contenders[0][0]
      // Ratio: the median of per-round ratios to the first contender (robust to the load moving between rounds).
      const ratio = (name) => median(samples.get(name).map((x, i) => x.rate / samples.get(base)[i].rate))
      for (const [name] of contenders) {
        const xs = samples.get(name)
        rows.push([
          keys === 1 ? '1 key' : '10k keys',
          name,
          fmtRate(median(xs.map((x) => x.rate))),
          `${ratio(name).toFixed(2)}x`,
          median(xs.map((x) => x.serverUs)).toFixed(1),
          median(xs.map((x) => x.clientUs)).toFixed(1),
        ])
      }
    }
    console.log(`## ${title}\n`)
    console.log(table(['keys', 'contender', 'checks/s', 'vs first row', 'Redis µs per check', 'client CPU µs per check'], rows))
    console.log()
  }

  const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0]
  await measure('Raw calls on one ioredis connection, 1 in flight', rawContenders)
  await measure('Through the limiters, 1 in flight', limiterContenders)

  // ---------------------------------------------------------------- redis-benchmark: Redis's time per call

  /** usec_per_call of one command run by redis-benchmark -c 4 (median of 5 runs). */
  async function usecPerCall(stat, args) {
    const xs = []
    for (let i = 0; i < 5; i++) {
      await admin.config('RESETSTAT')
      await run('redis-benchmark', ['-h', '127.0.0.1', '-p', PORT, '-c', '4', '-n', '100000', '-q', ...args], { maxBuffer: 64 << 20 })
      xs.push(Number(new RegExp(`cmdstat_${stat}:.*usec_per_call=([\\d.]+)`).exec(await admin.info('commandstats'))[1]))
    }
    return median(xs)
  }
  const now = String(Date.now())
  const rb = [
    ["rate-limiter-flexible's script", 'evalsha', ['EVALSHA', rlfSha, '1', 'rb:rlf', '1', '60']],
    ['halt token_bucket.lua (EVALSHA)', 'evalsha', ['EVALSHA', SHA1.token_bucket, '1', 'rb:{tb}', now, ...tbRule, '1']],
    ['prototype token_bucket (FCALL)', 'fcall', ['FCALL', 'halt_lean_token_bucket', '1', 'rb:{ltb}', now, tbRule.join(','), '1']],
    ['floor: GET + SET PX, no algorithm', 'fcall', ['FCALL', 'floor_get_set_px', '1', 'rb:{f1}', now, tbRule.join(','), '1']],
    ['floor: GET + SETRANGE in place, no TTL', 'fcall', ['FCALL', 'floor_get_setrange', '1', 'rb:{f2}', now, tbRule.join(','), '1']],
    ['floor: nothing (FCALL, same arguments)', 'fcall', ['FCALL', 'floor_none', '1', 'rb:{f3}', now, tbRule.join(','), '1']],
  ]
  const rbRows = []
  for (const [name, stat, args] of rb) rbRows.push([name, (await usecPerCall(stat, args)).toFixed(2)])
  console.log('## Redis µs per call (INFO commandstats usec_per_call, redis-benchmark -c 4 -n 100000, median of 5), 1 key\n')
  console.log(table(['script', 'µs per call'], rbRows))
  console.log(`\nLoad average at the start and the end: ${load0}, ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]} (2 CPUs).`)
} finally {
  for (const c of clients) c.disconnect()
  await stop()
}
