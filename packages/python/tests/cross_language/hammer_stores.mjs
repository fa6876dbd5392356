// The Node side of the cross-language tests of the compare-and-set stores: the built TypeScript package
// (packages/typescript/dist) on one key of a PostgreSQL table, a Memcached server, a MongoDB collection or a DynamoDB
// table (race.mjs: "ready", then N checks, 20 in flight).
import { RateLimiter } from '../../../typescript/dist/index.js'
import { race } from './race.mjs'

const [kind, conn, where, prefix, algorithm, limit, window, checks] = process.argv.slice(2)
const dist = '../../../typescript/dist/stores'
let store
let close
if (kind === 'postgres') {
  const { default: pg } = await import('pg')
  const { PostgresStore } = await import(`${dist}/postgres.js`)
  const pool = new pg.Pool({ connectionString: conn, max: 10 })
  store = new PostgresStore({ pool, table: where, prefix, cleanupInterval: 0 })
  close = () => pool.end()
} else if (kind === 'memcached') {
  const { MemcacheClient } = await import('memcache-client')
  const { MemcachedStore } = await import(`${dist}/memcached.js`)
  const client = new MemcacheClient({ server: conn, cmdTimeout: 5000 })
  store = new MemcachedStore({ client, prefix })
  close = () => client.shutdown()
} else if (kind === 'mongodb') {
  const { MongoClient } = await import('mongodb')
  const { MongoDBStore } = await import(`${dist}/mongodb.js`)
  const client = await new MongoClient(conn, { serverSelectionTimeoutMS: 2000, maxPoolSize: 20 }).connect()
  store = new MongoDBStore({ collection: client.db('halt_test').collection(where), prefix })
  close = () => client.close()
} else {
  const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb')
  const { DynamoDBStore } = await import(`${dist}/dynamodb.js`)
  const client = new DynamoDBClient({ endpoint: conn, region: 'us-east-1', credentials: { accessKeyId: 'halt', secretAccessKey: 'halt' } })
  store = new DynamoDBStore({ client, table: where, prefix })
  close = async () => client.destroy()
}
let errors = 0
const limiter = new RateLimiter({
  store,
  policy: { name: 'shared', algorithm, limit: Number(limit), window: Number(window) },
  // The emulators (FerretDB on SQLite, moto) answer 20 in flight slowly.
  timeout: kind === 'postgres' || kind === 'memcached' ? 5000 : 10_000,
  onStoreError: 'closed',
  telemetry: { onError: () => errors++ },
})
await limiter.peek('hot') // connect (and create the table or the TTL index) before the start
await race(limiter, checks, () => errors)
await close()
