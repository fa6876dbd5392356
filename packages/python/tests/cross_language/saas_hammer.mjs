// The Node side of the cross-language SaaS tests: the built TypeScript package on one Redis (redis://...) or one
// PostgreSQL table (postgres://..., the table in $TABLE), quotas and penalties.
//   quota <limit> <checks>: prints "ready", waits for a line on stdin, consumes <checks> units of one quota key
//     (20 in flight), prints "<admitted> <errors>".
//   violations <n>: the same handshake, then records <n> violations on one penalty key, prints "done".
//   get <id> / record <id> <severity>: prints the penalty of <id> as JSON (read, or after recording).
import { createInterface } from 'node:readline'
import { Redis } from 'ioredis'
import pg from 'pg'
import { PenaltyManager, QuotaManager } from '../../../typescript/dist/index.js'
import { PostgresStore } from '../../../typescript/dist/stores/postgres.js'
import { ioredisOptions, RedisStore } from '../../../typescript/dist/stores/redis.js'

const [url, prefix, mode, ...args] = process.argv.slice(2)
let store
let close
if (url.startsWith('postgres')) {
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  store = new PostgresStore({ pool, prefix, table: process.env.TABLE, cleanupInterval: 0 })
  close = () => pool.end()
} else {
  const redis = new Redis(url, ioredisOptions)
  await new Promise((resolve) => redis.once('ready', resolve))
  store = new RedisStore({ client: redis, prefix })
  close = () => redis.disconnect()
}
// The same configuration as the Python side (test_saas_node_and_python.py).
const penalties = new PenaltyManager({ store, config: { threshold: Number(process.env.THRESHOLD ?? 3), duration: 600, decayRate: 1e-6 } })
const quotas = new QuotaManager(store, { timeZone: 'Europe/Berlin' })

async function handshake() {
  console.log('ready')
  const lines = createInterface({ input: process.stdin })
  await new Promise((resolve) => lines.once('line', resolve))
  lines.close()
}

const show = (p) => JSON.stringify({ abuseScore: p.abuseScore, offences: p.offences, penaltyUntilMs: p.penaltyUntilMs, active: p.isActive() })

if (mode === 'quota') {
  const quota = { name: 'shared_calls', limit: Number(args[0]), period: 'monthly' }
  await quotas.checkQuota('hot', quota) // connect and load the script before the start
  await handshake()
  let admitted = 0
  let errors = 0
  let left = Number(args[1])
  async function lane() {
    while (left-- > 0) {
      try {
        if ((await quotas.consumeQuota('hot', quota)).allowed) admitted++
      } catch {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: 20 }, lane))
  console.log(`${admitted} ${errors}`)
} else if (mode === 'violations') {
  await penalties.getPenalty('abuser')
  await handshake()
  let left = Number(args[0])
  async function lane() {
    while (left-- > 0) await penalties.recordViolation('abuser')
  }
  await Promise.all(Array.from({ length: 20 }, lane))
  console.log('done')
} else if (mode === 'get') {
  console.log(show(await penalties.getPenalty(args[0])))
} else if (mode === 'record') {
  console.log(show(await penalties.recordViolation(args[0], Number(args[1]))))
}
await close()
