// The Node side of the cross-language tests of the compare-and-set stores: the built TypeScript package
// (packages/typescript/dist) on one key of a PostgreSQL table or a Memcached server. Prints "ready", waits for a line
// on stdin, then makes N checks, 20 in flight, and prints the number admitted and the number of store errors.
import { createInterface } from 'node:readline'
import { RateLimiter } from '../../../typescript/dist/index.js'

const [kind, conn, where, prefix, algorithm, limit, window, checks] = process.argv.slice(2)
let store
let close
if (kind === 'postgres') {
  const { default: pg } = await import('pg')
  const { PostgresStore } = await import('../../../typescript/dist/stores/postgres.js')
  const pool = new pg.Pool({ connectionString: conn, max: 10 })
  store = new PostgresStore({ pool, table: where, prefix, cleanupInterval: 0 })
  close = () => pool.end()
} else {
  const { MemcacheClient } = await import('memcache-client')
  const { MemcachedStore } = await import('../../../typescript/dist/stores/memcached.js')
  const client = new MemcacheClient({ server: conn, cmdTimeout: 5000 })
  store = new MemcachedStore({ client, prefix })
  close = () => client.shutdown()
}
let errors = 0
const limiter = new RateLimiter({
  store,
  policy: { name: 'shared', algorithm, limit: Number(limit), window: Number(window) },
  timeout: 5000,
  onStoreError: 'closed',
  telemetry: { onError: () => errors++ },
})
await limiter.peek('hot') // connect (and create the table) before the start
console.log('ready')
const lines = createInterface({ input: process.stdin })
await new Promise((resolve) => lines.once('line', resolve))
let admitted = 0
let left = Number(checks)
async function lane() {
  while (left-- > 0) if ((await limiter.check('hot')).allowed) admitted++
}
await Promise.all(Array.from({ length: 20 }, lane))
console.log(`${admitted} ${errors}`)
lines.close()
await close()
