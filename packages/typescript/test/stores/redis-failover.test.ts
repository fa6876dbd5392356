// Failure policy on a real outage: redis-server is SIGKILLed in the middle of a load and restarted (scripts/services.sh).
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisStore } from '../../src/stores/redis/index.js'
import { SPEC_DIR } from '../support/vectors.js'
import { healthy, judgeOutage, load, MODES, makeLane, RETRY, type Sample, undisturbed } from './outage.js'
import { type Connected, connect } from './redis-clients.js'
import { server } from './servers.js'

const run = promisify(execFile)
const SERVICES = join(SPEC_DIR, '..', 'scripts', 'services.sh')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const TIMEOUT = 100
const MARGIN = 250
const LOOPS = 10
const OUTAGE = 1500
// Answers the healthy phase and the outage must each have for their assertions to mean something.
const LEAST = 100

// The servers that `npm test` starts are shared with other test files; this test kills a Redis of its own,
// started by the same script in a state directory of its own.
describe.skipIf(server('HALT_TEST_REDIS_URL') === undefined)('Redis killed and restarted in the middle of a load', () => {
  const dir = mkdtempSync(join(tmpdir(), 'halt-fault-'))
  const services = (...args: string[]) => run('bash', [SERVICES, ...args], { env: { ...process.env, HALT_SERVICES_DIR: dir } })
  let url: string

  beforeAll(async () => {
    const { stdout } = await services('start', 'redis')
    url = /HALT_TEST_REDIS_URL='?([^'\n]+)/.exec(stdout)?.[1] as string
    expect(url).toMatch(/^redis:\/\//)
  })
  afterAll(async () => {
    await services('stop').catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  })

  it('no request throws or waits past the timeout; open, closed and fallback answer as configured; recovery is automatic', async () => {
    console.log(
      await undisturbed(async (attempt) => {
        const clients: Connected[] = []
        const lanes = await Promise.all(
          MODES.map(async (mode) => {
            const c = await connect('ioredis', url)
            clients.push(c)
            return makeLane(mode, new RedisStore({ client: c.client, prefix: `fault-${mode}-${attempt}:` }), TIMEOUT)
          }),
        )
        const running = load(lanes, LOOPS)
        let tKill = 0
        let tRestart = 0
        try {
          await healthy(lanes, LEAST)
          tKill = performance.now()
          await services('kill', 'redis')
          await sleep(OUTAGE)
          await services('restart', 'redis')
          tRestart = performance.now()
          const deadline = tRestart + 10_000
          while (lanes.some((l) => l.limiter.storeDown) && performance.now() < deadline) await sleep(20)
          await sleep(1000)
        } finally {
          await running.stop() // whatever failed: stop the load
          await Promise.all(clients.map((c) => c.close()))
        }

        const report: string[] = []
        for (const lane of lanes) {
          const { mode, samples, errors } = lane
          const { before, slowest } = judgeOutage(lane, { tDown: tKill, tDead: tKill, tUp: tRestart, timeout: TIMEOUT, margin: MARGIN, least: LEAST })
          if (mode === 'fallback') expect(samples.some((s) => s.storeError === 'fallback' && s.decision?.reason === 'limit')).toBe(true)

          // Recovery: by itself, soon after the restart, and for good.
          const recovered = samples.find((s) => s.start > tRestart && s.storeError === undefined)
          expect(recovered, `${mode}: a decision from Redis after the restart`).toBeDefined()
          const recovery = (recovered as Sample).start + (recovered as Sample).latency - tRestart
          expect(recovery, mode).toBeLessThan(5_000)
          const later = samples.filter((s) => s.start > (recovered as Sample).start + (recovered as Sample).latency)
          expect(later.length, mode).toBeGreaterThan(100)
          expect(
            later.filter((s) => s.storeError !== undefined),
            mode,
          ).toEqual([])

          // Telemetry saw the errors only during the outage; the circuit breaker kept them few.
          expect(
            errors.every((e) => e.at > tKill && e.at < tRestart + recovery + 1),
            mode,
          ).toBe(true)
          expect(errors.length, mode).toBeLessThan(LOOPS + (tRestart + recovery - tKill) / RETRY + 10)

          const storeErrors = samples.filter((s) => s.storeError !== undefined).length
          report.push(
            `| ${mode} | ${samples.length} | ${before.length} | ${storeErrors} | ${errors.length} | ${Math.round(recovery)} ms | ${slowest.toFixed(1)} ms |`,
          )
        }
        return [
          `Redis SIGKILLed for ${OUTAGE} ms, then restarted; timeout ${TIMEOUT} ms, retryStoreAfter ${RETRY} ms, ${LOOPS} loops per mode`,
          '| onStoreError | requests served | before the kill | answered by the failure policy | store errors (telemetry) | recovery after restart | slowest answer |',
          '|---|---|---|---|---|---|---|',
          ...report,
        ].join('\n')
      }),
    )
  }, 180_000)
})
