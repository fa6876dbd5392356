// Runs an example API in several processes sharing one port (node:cluster), as a multi-core deployment would.
// Usage: WORKERS=4 REDIS_URL=redis://127.0.0.1:6379 node examples/cluster.mjs examples/express-api.mjs
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'

const file = process.argv[2]
if (file === undefined) {
  console.error('usage: node examples/cluster.mjs <example.mjs>   (WORKERS, default: one per CPU)')
  process.exit(2)
}
const workers = Number(process.env.WORKERS ?? availableParallelism())
if (!process.env.REDIS_URL) console.error('cluster: no REDIS_URL, so every worker limits on its own in-memory store')
cluster.setupPrimary({ exec: resolve(file) })
for (let i = 0; i < workers; i++) cluster.fork()
cluster.on('exit', (w, code) => {
  if (code !== 0) console.error(`cluster: worker ${w.id} exited with ${code}`)
})
const stop = () => {
  for (const w of Object.values(cluster.workers ?? {})) w?.kill()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
