// Failure policy on real outages of the compare-and-set stores: each server (an instance of its own, started by
// scripts/services.sh in a state directory of its own) is SIGKILLed in the middle of a load and restarted on the same
// port (PostgreSQL, Memcached, FerretDB), or frozen with SIGSTOP and thawed (moto: a restart would lose its in-memory
// tables). open, closed and fallback must answer as configured, no request may wait past the timeout, and the
// limiter must go back to the store by itself.
import { execFile } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDynamoTable } from '../../src/stores/dynamodb/index.js'
import { dynamoClient, type Opened, openDynamo, openMemcached, openMongo, openPostgres } from './cas-clients.js'
import { SERVICES_SH, type ServerVar, serverUrl, servicePid, sleep } from './cas-support.js'
import { healthy, judgeOutage, lastFailure, load, MODES, makeLane, RETRY, type Sample, undisturbed } from './outage.js'

const run = promisify(execFile)
const MARGIN = 150
const OUTAGE = 1500
// Answers the healthy phase and the outage must each have for their assertions to mean something.
const LEAST = 30

interface Case {
  name: string
  service: 'postgres' | 'memcached' | 'mongodb' | 'dynamodb'
  env: ServerVar
  /** The variable services.sh prints for the instance. */
  printed: string
  outage: 'kill' | 'stall'
  /**
   * The limiter's timeout (ms). 250 for the real servers: at 100, a loaded 2-core machine (one busy core beside the
   * test) made a healthy PostgreSQL miss it now and then, and one miss opens the circuit for retryStoreAfter. The
   * emulators answer 30 concurrent loops slower still (FerretDB on SQLite, moto in Python: several ms per request,
   * queued).
   */
  timeout: number
  /** Concurrent request loops per onStoreError mode. */
  loops: number
  open(url: string, lane: string): Promise<Opened>
}

const cases: Case[] = [
  {
    name: 'PostgreSQL',
    service: 'postgres',
    env: 'HALT_TEST_POSTGRES_URL',
    printed: 'HALT_TEST_POSTGRES_URL',
    outage: 'kill',
    timeout: 250,
    loops: 10,
    open: (url, lane) => openPostgres(url, `fault_${lane}`, 'halt:', 10),
  },
  {
    name: 'Memcached',
    service: 'memcached',
    env: 'HALT_TEST_MEMCACHED_URL',
    printed: 'HALT_TEST_MEMCACHED_URL',
    outage: 'kill',
    timeout: 250,
    loops: 10,
    open: (url, lane) => openMemcached(url, `${lane}:`),
  },
  {
    name: 'FerretDB',
    service: 'mongodb',
    env: 'HALT_TEST_FERRETDB_URL',
    printed: 'HALT_TEST_FERRETDB_URL',
    outage: 'kill',
    // FerretDB on SQLite serialises writes: with 30 loops (3 modes x 10) a healthy server misses 500 ms now and then.
    timeout: 1000,
    loops: 4,
    open: (url, lane) => openMongo(url, `fault_${lane}`, 'halt:'),
  },
  {
    name: 'DynamoDB (moto)',
    service: 'dynamodb',
    env: 'HALT_TEST_DYNAMODB_URL',
    printed: 'HALT_TEST_DYNAMODB_URL',
    outage: 'stall',
    timeout: 500,
    loops: 10,
    open: async (url, lane) => {
      await createDynamoTable(dynamoClient(url), { table: `fault_${lane}` })
      return openDynamo(url, `fault_${lane}`, 'halt:')
    },
  },
]

for (const c of cases) {
  // Run where the shared server of this kind is provisioned (npm test starts them; CI must).
  describe.skipIf(serverUrl(c.env) === undefined)(
    `${c.name}: ${c.outage === 'kill' ? 'killed and restarted' : 'frozen and thawed'} in the middle of a load`,
    () => {
      let dir: string | undefined
      const services = (...args: string[]) => run('bash', [SERVICES_SH, ...args], { env: { ...process.env, HALT_SERVICES_DIR: dir } })
      let url: string

      beforeAll(async () => {
        dir = mkdtempSync(join(tmpdir(), 'halt-fault-'))
        chmodSync(dir, 0o755) // PostgreSQL runs as its own OS user: its cluster then lives in here, and goes with it
        const { stdout } = await services('start', c.service)
        url = new RegExp(`${c.printed}='?([^'\\n]+)`).exec(stdout)?.[1] as string
        expect(url).toBeDefined()
      }, 120_000)
      afterAll(async () => {
        if (dir === undefined) return
        await services('stop').catch(() => {})
        rmSync(dir, { recursive: true, force: true })
      }, 60_000)

      const TIMEOUT = c.timeout
      const LOOPS = c.loops
      it('no request throws or waits past the timeout; open, closed and fallback answer as configured; recovery is automatic', async () => {
        console.log(
          await undisturbed(async (attempt) => {
            const opened: Opened[] = []
            const lanes = await Promise.all(
              MODES.map(async (mode) => {
                const o = await c.open(url, attempt === 1 ? mode : `${mode}${attempt}`)
                opened.push(o)
                const l = makeLane(mode, o.store, TIMEOUT)
                // Connections (as many as the load keeps in flight: a pool that grows under the load would open them
                // inside the timeout) and tables are set up before the load.
                await l.limiter.check('warm-up')
                await Promise.all(Array.from({ length: LOOPS }, (_, i) => l.limiter.check(`warm-up-${i}`)))
                return l
              }),
            )
            const running = load(lanes, LOOPS)
            let frozen: number | undefined
            let tDown = 0
            let tDead = 0
            let tUp = 0
            let tSettled = Number.POSITIVE_INFINITY
            try {
              await healthy(lanes, LEAST)
              tDown = performance.now()
              // tDead: the moment the server surely answers no more (services.sh returns once the process is gone: on a
              // loaded machine that can be a few hundred ms after tDown). tUp: the moment it may answer again (the restart
              // begins, or the thaw).
              tDead = tDown
              if (c.outage === 'kill') {
                await services('kill', c.service)
                tDead = performance.now()
                await sleep(OUTAGE)
                tUp = performance.now()
                await services('restart', c.service)
              } else {
                const pid = servicePid(c.service as 'dynamodb', dir as string)
                process.kill(pid, 'SIGSTOP')
                frozen = pid
                await sleep(OUTAGE)
                tUp = performance.now()
                process.kill(pid, 'SIGCONT')
                frozen = undefined
              }
              const deadline = performance.now() + 15_000
              while (lanes.some((l) => l.limiter.storeDown) && performance.now() < deadline) await sleep(20)
              await sleep(4000)
              // A driver that rediscovers its server (MongoDB's) may flap once more late: keep the load on until every lane
              // has answered from the store for a while since its last failure (bounded), so that "for good" can be judged.
              const settled = () =>
                lanes.every((l) => {
                  const last = lastFailure(l.samples)
                  let after = 0
                  for (let i = l.samples.length - 1; i >= 0 && after <= 60 && (l.samples[i] as Sample).start > last; i--) after++
                  return after > 60
                })
              const patience = performance.now() + 10_000
              while (!settled() && performance.now() < patience) await sleep(100)
              tSettled = performance.now()
            } finally {
              if (frozen !== undefined) process.kill(frozen, 'SIGCONT') // whatever failed: thaw the server, stop the load
              await running.stop()
              await Promise.all(opened.map((o) => o.close().catch(() => {})))
            }

            const report: string[] = []
            for (const lane of lanes) {
              const { mode, samples, errors } = lane
              const { before, slowest } = judgeOutage(lane, { tDown, tDead, tUp, timeout: TIMEOUT, margin: MARGIN, least: LEAST })

              // Recovery: by itself, soon, and for good: the time from the restart to the first decision after which the
              // store answers every check (a driver that rediscovers its server, like MongoDB's, may flap before that).
              // Judged on the checks answered before the load was told to stop: one still in flight then (an emulator's
              // slow answer) must not hide the 60 answers from the store that ended the wait.
              const judged = samples.filter((s) => s.start + s.latency <= tSettled)
              const last = lastFailure(judged)
              const first = samples.find((s) => s.start > tUp && s.storeError === undefined)
              expect(first, `${mode}: a decision from the store after the outage`).toBeDefined()
              const recovery = Math.max(0, last - tUp)
              expect(recovery, `${mode}: ms from the restart until the store answers for good`).toBeLessThan(10_000)
              const later = judged.filter((s) => s.start > last)
              expect(later.length, mode).toBeGreaterThan(30)
              const storeErrors = samples.filter((s) => s.storeError !== undefined).length
              report.push(
                `| ${mode} | ${samples.length} | ${before.length} | ${storeErrors} | ${errors.length} | ${Math.round(recovery)} ms | ${slowest.toFixed(1)} ms |`,
              )
            }
            return [
              `${c.name} ${c.outage === 'kill' ? 'SIGKILLed, restarted' : 'frozen (SIGSTOP), thawed'} after ${OUTAGE} ms; timeout ${TIMEOUT} ms, retryStoreAfter ${RETRY} ms, ${LOOPS} loops per mode`,
              '| onStoreError | requests served | before the outage | answered by the failure policy | store errors (telemetry) | answering for good after | slowest answer |',
              '|---|---|---|---|---|---|---|',
              ...report,
            ].join('\n')
          }),
        )
      }, 240_000)
    },
  )
}
