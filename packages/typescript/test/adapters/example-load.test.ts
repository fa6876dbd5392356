// A sustained, bounded load on the README's example API on Redis, served by three worker processes sharing one port:
// every client key is admitted exactly what its token bucket allows over the run, whichever process answered.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { presets } from '../../src/index.js'
import { server } from '../stores/servers.js'
import { PACKAGE_ROOT, startExample } from '../support/examples.js'

const REDIS = server('HALT_TEST_REDIS_URL')
const WORKERS = 3
const KEYS = 5
const IN_FLIGHT = 64
const SECONDS = 5
/** Past SECONDS the run goes on until every client has been refused a few times (a slow machine), at most this long. */
const MAX_SECONDS = 30

it.runIf(REDIS !== undefined && existsSync(join(PACKAGE_ROOT, 'dist/adapters/express.js')))(
  `examples/express-api.mjs on Redis, ${WORKERS} worker processes, ${KEYS} clients, ${IN_FLIGHT} requests in flight for ${SECONDS} s`,
  async () => {
    // The log lines (one per decision) are drained and dropped past the greetings.
    const { url } = await startExample('examples/cluster.mjs', {
      args: ['examples/express-api.mjs'],
      env: { WORKERS: String(WORKERS), REDIS_URL: REDIS as string },
      greetings: WORKERS,
      maxOutput: 100_000,
      waitMs: 20_000,
    })
    // Client addresses unique to this run, so that keys left in Redis by an earlier run do not count.
    const base = (process.pid % 200) + 20
    const ips = Array.from({ length: KEYS }, (_, i) => `198.18.${base}.${i + 1}`)
    // Token bucket (PUBLIC_API): burst 120, then 100 per 60 s. Over the run a key may take the burst plus the refill
    // of the run's duration; under a sustained load it takes all of it (the floor: the burst, plus one unit per
    // whole 0.6 s that surely fell inside the run).
    const { burst, limit } = presets.PUBLIC_API as { burst: number; limit: number }
    const rate = limit / 60
    const admitted = new Map(ips.map((ip) => [ip, 0]))
    const refused = new Map(ips.map((ip) => [ip, 0]))
    let other = 0
    let sent = 0
    const start = performance.now()
    const going = () => {
      const t = performance.now() - start
      return t < SECONDS * 1000 || (t < MAX_SECONDS * 1000 && [...refused.values()].some((n) => n < 20))
    }
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async (_, lane) => {
        for (let i = lane; going(); i += IN_FLIGHT) {
          const ip = ips[i % KEYS] as string
          sent++
          const r = await fetch(`${url}/api/hello`, { headers: { 'x-forwarded-for': ip } })
          await r.arrayBuffer()
          if (r.status === 200) admitted.set(ip, (admitted.get(ip) as number) + 1)
          else if (r.status === 429) refused.set(ip, (refused.get(ip) as number) + 1)
          else other++
        }
      }),
    )
    const elapsed = (performance.now() - start) / 1000
    const limited = [...refused.values()].reduce((a, b) => a + b, 0)
    const most = burst + Math.ceil(elapsed * rate)
    const least = burst + Math.floor((elapsed - 1) * rate)
    const counts = [...admitted.values()]
    console.log(
      [
        `| processes | clients | in flight | seconds | requests | req/s | admitted per client (min-max) | allowed by the bucket | 429 | other |`,
        `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
        `| ${WORKERS} | ${KEYS} | ${IN_FLIGHT} | ${elapsed.toFixed(1)} | ${sent} | ${Math.round(sent / elapsed)} | ${Math.min(...counts)}-${Math.max(...counts)} | ${least}-${most} | ${limited} | ${other} |`,
      ].join('\n'),
    )
    expect(other).toBe(0)
    for (const [ip, n] of admitted) {
      expect(n, ip).toBeLessThanOrEqual(most)
      expect(n, ip).toBeGreaterThanOrEqual(least)
    }
    for (const [ip, n] of refused) expect(n, `${ip} was refused (the load kept it at its limit)`).toBeGreaterThanOrEqual(20)
  },
  90_000,
)
