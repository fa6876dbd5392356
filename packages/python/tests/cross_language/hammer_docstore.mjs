// The Node side of the MongoDB and DynamoDB cross-language tests: the built TypeScript package
// (packages/typescript/dist) on one key of one collection or table. Prints "ready", waits for a line on stdin, then
// makes N checks, 20 in flight, and prints the number admitted and the number of store errors.
import { createInterface } from 'node:readline'
import { DynamoDBClient } from '@aws-sdk/client-dynamodb'
import { MongoClient } from 'mongodb'
import { RateLimiter } from '../../../typescript/dist/index.js'
import { DynamoDBStore } from '../../../typescript/dist/stores/dynamodb.js'
import { MongoDBStore } from '../../../typescript/dist/stores/mongodb.js'

const [kind, url, where, prefix, algorithm, limit, window, checks] = process.argv.slice(2)
let store
let close
if (kind === 'mongodb') {
  const client = await new MongoClient(url, { serverSelectionTimeoutMS: 2000, maxPoolSize: 20 }).connect()
  store = new MongoDBStore({ collection: client.db('halt_test').collection(where), prefix })
  close = () => client.close()
} else {
  const client = new DynamoDBClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'halt', secretAccessKey: 'halt' } })
  store = new DynamoDBStore({ client, table: where, prefix })
  close = async () => client.destroy()
}
let errors = 0
const limiter = new RateLimiter({
  store,
  policy: { name: 'shared', algorithm, limit: Number(limit), window: Number(window) },
  timeout: 10_000,
  onStoreError: 'closed',
  telemetry: { onError: () => errors++ },
})
await limiter.peek('hot') // connect (and create the TTL index) before the start
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
