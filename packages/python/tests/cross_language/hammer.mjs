// The Node side of the cross-language test: the built TypeScript package (packages/typescript/dist) on one Redis key.
// Prints "ready", waits for a line on stdin, then makes N checks, 20 in flight, and prints the number admitted and
// the number of store errors. An algorithm written "a+b" is a limit set: 'tight' (a, the limit) and 'loose' (b, twice
// the limit), as the Python side builds it.
import { createInterface } from 'node:readline'
import { Redis } from 'ioredis'
import { RateLimiter } from '../../../typescript/dist/index.js'
import { ioredisOptions, RedisStore } from '../../../typescript/dist/stores/redis.js'

const [url, prefix, algorithm, limit, window, checks] = process.argv.slice(2)
const redis = new Redis(url, ioredisOptions)
const [tight, loose] = algorithm.split('+')
const policy =
  loose === undefined
    ? { name: 'shared', algorithm, limit: Number(limit), window: Number(window) }
    : [
        { name: 'tight', algorithm: tight, limit: Number(limit), window: Number(window) },
        { name: 'loose', algorithm: loose, limit: 2 * Number(limit), window: Number(window) },
      ]
const limiter = new RateLimiter({
  store: new RedisStore({ client: redis, prefix }),
  policy,
  timeout: 5000,
  onStoreError: 'closed',
  telemetry: { onError: () => errors++ },
})
let errors = 0
await new Promise((resolve) => redis.once('ready', resolve)) // ioredisOptions turns the offline queue off
await limiter.peek('hot') // connect and load the script before the start
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
redis.disconnect()
