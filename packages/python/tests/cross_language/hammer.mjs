// The Node side of the cross-language test: the built TypeScript package (packages/typescript/dist) on one Redis key.
// race.mjs: "ready", then N checks, 20 in flight. An algorithm written "a+b" is a limit set: 'tight' (a, the limit)
// and 'loose' (b, twice the limit), as the Python side builds it.
import { Redis } from 'ioredis'
import { RateLimiter } from '../../../typescript/dist/index.js'
import { ioredisOptions, RedisStore } from '../../../typescript/dist/stores/redis.js'
import { race } from './race.mjs'

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
await race(limiter, checks, () => errors)
redis.disconnect()
