// Redis benchmark: checks/s of Halt's RedisStore beside rate-limiter-flexible's RateLimiterRedis on one Redis (1 and
// 100 in flight, 1 key and 10k keys), redis-benchmark running the same EVALSHA as the server's ceiling, and the
// blocked-key cache under an abusive client. Starts its own redis-server with scripts/services.sh and stops it.
// Run from the repository root: npm run build && node bench/redis.mjs   (BENCH_ROUNDS, BENCH_MS to change the effort)
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { RateLimiter } from 'halt'
import { ioredisOptions, RedisStore, SHA1 } from 'halt/redis'
import { RateLimiterRedis } from 'rate-limiter-flexible'
import { fmtRate, median, ownRedis, table } from './lib.mjs'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const ROUND_MS = Number(process.env.BENCH_MS ?? 700)
const BIG = 1e12 // limits nobody reaches: the admission path is measured
const KEYS = Array.from({ length: 10_000 }, (_, i) => `ip:10.0.${i >> 8}.${i & 255}`)
const SCENARIOS = [
  { inflight: 1, keys: 1 },
  { inflight: 1, keys: 10_000 },
  { inflight: 100, keys: 1 },
  { inflight: 100, keys: 10_000 },
]

// ------------------------------------------------------------------ a Redis of our own

const { port: PORT, clients, connect, stop } = await ownRedis()
const admin = await connect({})

try {
  const version = (await admin.info('server')).match(/redis_version:(\S+)/)[1]
  console.log(
    `# Redis benchmark\n\nnode ${process.version}, redis-server ${version} (no persistence) on loopback, ${ROUNDS} alternating rounds of ${ROUND_MS} ms, medians\n`,
  )

  // ---------------------------------------------------------------- contenders

  async function halt(algorithm, storeOptions = {}) {
    const store = new RedisStore({ client: await connect(ioredisOptions), prefix: `bench-${algorithm}-${storeOptions.batch ?? 'b'}:`, ...storeOptions })
    const limiter = new RateLimiter({ store, policy: { name: 'b', limit: BIG, window: 60, algorithm } })
    return { store, check: (key) => limiter.check(key) }
  }
  async function rlf() {
    // As rate-limiter-flexible's documentation sets it up (offline queue off).
    const limiter = new RateLimiterRedis({ storeClient: await connect({ enableOfflineQueue: false }), points: 1e9, duration: 60, keyPrefix: 'bench-rlf' })
    return { check: (key) => limiter.consume(key) }
  }
  // rate-limiter-flexible's RateLimiterRedis is a fixed-window counter: halt fixed_window is the like-for-like row.
  const contenders = [
    ['rate-limiter-flexible RateLimiterRedis', await rlf()],
    ['halt fixed_window', await halt('fixed_window')],
    ['halt token_bucket', await halt('token_bucket')],
    ['halt token_bucket, batch: false', await halt('token_bucket', { batch: false })],
    ['halt gcra', await halt('gcra')],
    ['halt sliding_window', await halt('sliding_window')],
    ['halt leaky_bucket', await halt('leaky_bucket')],
  ]

  /** Redis's own count of script calls and of the microseconds it spent in them (INFO commandstats). */
  const scriptStats = async () => {
    const info = await admin.info('commandstats')
    let calls = 0
    let usec = 0
    for (const c of ['evalsha', 'eval']) {
      const m = new RegExp(`cmdstat_${c}:calls=(\\d+),usec=(\\d+)`).exec(info)
      if (m) {
        calls += Number(m[1])
        usec += Number(m[2])
      }
    }
    return { calls, usec }
  }

  /**
   * Checks per second with `inflight` loops, each awaiting one check after another, for `ms`; with the server's
   * time and this process's CPU time per check, which other load on the machine moves far less than the rate.
   */
  async function throughput(check, inflight, keys, ms) {
    let n = 0
    const before = await scriptStats()
    const cpu0 = process.cpuUsage()
    const end = performance.now() + ms
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: inflight }, async (_, w) => {
        for (let i = w; performance.now() < end; i += inflight, n++) await check(KEYS[i % keys])
      }),
    )
    const rate = n / ((performance.now() - t0) / 1000)
    const cpu = process.cpuUsage(cpu0)
    const after = await scriptStats()
    return { rate, serverUs: (after.usec - before.usec) / n, clientUs: (cpu.user + cpu.system) / n }
  }

  const results = new Map() // scenario -> name -> median checks/s
  const costs = new Map() // scenario -> name -> { serverUs, clientUs } (medians)
  for (const s of SCENARIOS) {
    const samples = new Map(contenders.map(([name]) => [name, []]))
    for (const [, c] of contenders) await throughput(c.check, s.inflight, s.keys, 300) // warm up
    // One in flight measures latency, which noise on the machine moves most: twice the rounds, half as long.
    const rounds = s.inflight === 1 ? 2 * ROUNDS : ROUNDS
    const ms = s.inflight === 1 ? ROUND_MS / 2 : ROUND_MS
    for (let r = 0; r < rounds; r++) {
      for (const [name, c] of contenders) samples.get(name).push(await throughput(c.check, s.inflight, s.keys, ms))
    }
    results.set(s, new Map([...samples].map(([k, v]) => [k, median(v.map((x) => x.rate))])))
    costs.set(s, new Map([...samples].map(([k, v]) => [k, { serverUs: median(v.map((x) => x.serverUs)), clientUs: median(v.map((x) => x.clientUs)) }])))
  }

  const label = (s) => `${s.inflight} in flight, ${s.keys === 1 ? '1 key' : '10k keys'}`
  const rlfName = contenders[0][0]
  console.log('## Checks per second (ratio to rate-limiter-flexible)\n')
  console.log(
    table(
      ['contender', ...SCENARIOS.map(label)],
      contenders.map(([name]) => [
        name,
        ...SCENARIOS.map((s) => `${fmtRate(results.get(s).get(name))} (${(results.get(s).get(name) / results.get(s).get(rlfName)).toFixed(2)}x)`),
      ]),
    ),
  )

  console.log('\n## Where a check spends its time: Redis (script µs per check) and this process (CPU µs per check)\n')
  console.log(
    table(
      ['contender', ...SCENARIOS.map(label)],
      contenders.map(([name]) => [
        name,
        ...SCENARIOS.map((s) => {
          const c = costs.get(s).get(name)
          return `${c.serverUs.toFixed(1)} + ${c.clientUs.toFixed(1)}`
        }),
      ]),
    ),
  )

  // ---------------------------------------------------------------- the server's ceiling

  const now = String(Date.now())
  const tbArgs = [now, String(BIG), '60000', String(BIG), '0', '10', '0', '0', '1']
  await admin.script('LOAD', readFileSync(join(ROOT, 'spec/redis/token_bucket.lua'), 'utf8'))
  const rlfScript =
    "redis.call('set', KEYS[1], 0, 'EX', ARGV[2], 'NX') local consumed = redis.call('incrby', KEYS[1], ARGV[1]) local ttl = redis.call('pttl', KEYS[1]) if ttl == -1 then redis.call('expire', KEYS[1], ARGV[2]) ttl = 1000 * ARGV[2] end return {consumed, ttl}"
  const rlfSha = await admin.script('LOAD', rlfScript)
  // The server's raw EVALSHA rate: a script that returns at once, with the same arguments as Halt's.
  const constSha = await admin.script('LOAD', 'return 1')

  /** redis-benchmark's requests per second (median of 3) for EVALSHA with these options. */
  async function ceiling(sha, args, { clients = 50, pipeline, keys }) {
    const key = keys === 1 ? 'bench:ceiling:{ip:10.0.0.1}' : 'bench:ceiling:{__rand_int__}'
    const n = String(pipeline > 1 ? 1_000_000 : 300_000)
    const argv = ['-h', '127.0.0.1', '-p', PORT, '-c', String(clients), '-P', String(pipeline), '-n', n, ...(keys > 1 ? ['-r', String(keys)] : []), '-q']
    const rates = []
    for (let i = 0; i < 3; i++) {
      const { stdout } = await run('redis-benchmark', [...argv, 'EVALSHA', sha, '1', key, ...args], { maxBuffer: 64 << 20 })
      rates.push(Number(/([\d.]+) requests per second/.exec(stdout.split('\r').pop())[1]))
    }
    return median(rates)
  }
  const ceilings = new Map()
  for (const keys of [1, 10_000]) {
    ceilings.set(keys, {
      pipelined: await ceiling(SHA1.token_bucket, tbArgs, { pipeline: 16, keys }),
      unpipelined: await ceiling(SHA1.token_bucket, tbArgs, { pipeline: 1, keys }),
      rlfPipelined: await ceiling(rlfSha, ['1', '60', '1000000000', '60'], { pipeline: 16, keys }),
      rlfUnpipelined: await ceiling(rlfSha, ['1', '60', '1000000000', '60'], { pipeline: 1, keys }),
      constPipelined: await ceiling(constSha, tbArgs, { pipeline: 16, keys }),
      constUnpipelined: await ceiling(constSha, tbArgs, { pipeline: 1, keys }),
    })
  }
  console.log("\n## The server's ceiling: redis-benchmark -c 50 running EVALSHA\n")
  console.log(
    table(
      ['script', 'keys', '-P 16 (pipelined)', '-P 1 (unpipelined)'],
      [1, 10_000].flatMap((keys) => [
        [
          'halt token_bucket (spec/redis/token_bucket.lua)',
          keys === 1 ? '1' : '10k',
          fmtRate(ceilings.get(keys).pipelined),
          fmtRate(ceilings.get(keys).unpipelined),
        ],
        ["rate-limiter-flexible's script", keys === 1 ? '1' : '10k', fmtRate(ceilings.get(keys).rlfPipelined), fmtRate(ceilings.get(keys).rlfUnpipelined)],
        [
          '`return 1`, same arguments (raw EVALSHA)',
          keys === 1 ? '1' : '10k',
          fmtRate(ceilings.get(keys).constPipelined),
          fmtRate(ceilings.get(keys).constUnpipelined),
        ],
      ]),
    ),
  )

  // ---------------------------------------------------------------- targets

  const rows = []
  const check = (what, value, target) => rows.push([what, value.toFixed(2), target.toFixed(2), value >= target ? 'met' : 'NOT met'])
  for (const s of SCENARIOS)
    check(`halt token_bucket / rate-limiter-flexible, ${label(s)}`, results.get(s).get('halt token_bucket') / results.get(s).get(rlfName), 1)
  for (const s of SCENARIOS)
    check(`halt fixed_window / rate-limiter-flexible, ${label(s)}`, results.get(s).get('halt fixed_window') / results.get(s).get(rlfName), 1)
  for (const s of SCENARIOS.filter((x) => x.inflight === 100)) {
    check(`halt / pipelined ceiling (same script), ${label(s)}`, results.get(s).get('halt token_bucket') / ceilings.get(s.keys).pipelined, 0.7)
  }
  for (const s of SCENARIOS.filter((x) => x.inflight === 100)) {
    check(`halt / raw EVALSHA ceiling (return 1), ${label(s)}`, results.get(s).get('halt token_bucket') / ceilings.get(s.keys).constPipelined, 0.7)
  }
  console.log('\n## Targets\n')
  console.log(table(['ratio', 'measured', 'target', ''], rows))

  // ---------------------------------------------------------------- blocked-key cache under an abusive client

  /** EVALSHA/EVAL calls the server ran (its own count). */
  const scriptCalls = async () => {
    const info = await admin.info('commandstats')
    return ['evalsha', 'eval'].reduce((n, c) => n + Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(info)?.[1] ?? 0), 0)
  }
  const abusePolicy = { name: 'abuse', limit: 100, window: 60 }
  const abusers = [
    [
      'rate-limiter-flexible RateLimiterRedis',
      async () => {
        const l = new RateLimiterRedis({ storeClient: await connect({ enableOfflineQueue: false }), points: 100, duration: 60, keyPrefix: 'abuse-rlf' })
        return (key) =>
          l.consume(key).then(
            () => true,
            (r) => {
              if (r instanceof Error) throw r
              return false
            },
          )
      },
    ],
    [
      'rate-limiter-flexible, inMemoryBlockOnConsumed',
      async () => {
        const l = new RateLimiterRedis({
          storeClient: await connect({ enableOfflineQueue: false }),
          points: 100,
          duration: 60,
          keyPrefix: 'abuse-rlfb',
          inMemoryBlockOnConsumed: 100,
        })
        return (key) =>
          l.consume(key).then(
            () => true,
            (r) => {
              if (r instanceof Error) throw r
              return false
            },
          )
      },
    ],
    [
      'halt token_bucket',
      async () => {
        const l = new RateLimiter({ store: new RedisStore({ client: await connect(ioredisOptions), prefix: 'abuse-h:' }), policy: abusePolicy })
        return (key) => l.check(key).then((d) => d.allowed)
      },
    ],
    [
      'halt token_bucket, blockedKeyCache',
      async () => {
        const l = new RateLimiter({
          store: new RedisStore({ client: await connect(ioredisOptions), prefix: 'abuse-hc:', blockedKeyCache: true }),
          policy: abusePolicy,
        })
        return (key) => l.check(key).then((d) => d.allowed)
      },
    ],
  ]
  const abuse = []
  for (const [name, make] of abusers) {
    const check = await make()
    const rates = []
    const calls = []
    let admitted = 0
    for (let r = 0; r < ROUNDS; r++) {
      const key = `abuser:${r}` // each round starts with a full allowance of 100
      let n = 0
      const before = await scriptCalls()
      const t0 = performance.now()
      const end = t0 + ROUND_MS
      // Each check starts from a macrotask, as a request arriving on a socket does: answers given in process
      // (a promise already resolved) would otherwise starve the I/O that carries Redis's replies.
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          for (; performance.now() < end; n++) {
            await new Promise((resolve) => setImmediate(resolve))
            if (await check(key)) admitted++
          }
        }),
      )
      rates.push(n / ((performance.now() - t0) / 1000))
      calls.push(((await scriptCalls()) - before) / (n / 1000))
    }
    abuse.push([name, fmtRate(median(rates)), String(Math.round(admitted / ROUNDS)), median(calls).toFixed(1)])
  }
  console.log('\n## One key hammered far over its limit (100 per minute), 100 in flight\n')
  console.log(table(['contender', 'checks/s', 'admitted per round', 'script calls per 1000 checks'], abuse))
} finally {
  for (const c of clients) c.disconnect()
  await stop()
}
