// Failure policy on a real outage: redis-server is SIGKILLed in the middle of a load and restarted (scripts/services.sh).
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Decision, type DecisionEvent, type OnStoreError, RateLimiter, type StoreErrorEvent } from '../../src/index.js'
import { RedisStore } from '../../src/stores/redis/index.js'
import { SPEC_DIR } from '../support/vectors.js'
import { undisturbed } from './disturbance.js'
import { type Connected, connect } from './redis-clients.js'
import { server } from './servers.js'

const run = promisify(execFile)
const SERVICES = join(SPEC_DIR, '..', 'scripts', 'services.sh')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const TIMEOUT = 100
const MARGIN = 250
const RETRY = 200
const LIMIT = 50
const KEYS = 20
const LOOPS = 10
const OUTAGE = 1500

interface Sample {
  key: string
  start: number
  latency: number
  decision?: Decision
  storeError?: OnStoreError
  thrown?: unknown
}

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
        const modes: OnStoreError[] = ['open', 'closed', 'fallback']
        const clients: Connected[] = []
        const lanes = await Promise.all(
          modes.map(async (mode) => {
            const c = await connect('ioredis', url)
            clients.push(c)
            const events = new Map<Decision, DecisionEvent>()
            const errors: { at: number; event: StoreErrorEvent }[] = []
            const limiter = new RateLimiter({
              store: new RedisStore({ client: c.client, prefix: `fault-${mode}-${attempt}:` }),
              policy: { name: 'api', limit: LIMIT, window: 60 },
              timeout: TIMEOUT,
              retryStoreAfter: RETRY,
              onStoreError: mode,
              telemetry: {
                onCheck: (e) => events.set(e.decision, e),
                onError: (event) => errors.push({ at: performance.now(), event }),
              },
            })
            return { mode, limiter, events, errors, samples: [] as Sample[] }
          }),
        )

        let running = true
        const loops = lanes.flatMap((lane) =>
          Array.from({ length: LOOPS }, async (_, loop) => {
            for (let i = 0; running; i++) {
              const start = performance.now()
              const sample: Sample = { key: `user:${(loop * 7 + i) % KEYS}`, start, latency: 0 }
              try {
                const d = await lane.limiter.check(sample.key)
                sample.decision = d
                sample.storeError = lane.events.get(d)?.storeError
              } catch (e) {
                sample.thrown = e
              }
              sample.latency = performance.now() - start
              lane.samples.push(sample)
              await sleep(2)
            }
          }),
        )

        await sleep(1000)
        const tKill = performance.now()
        await services('kill', 'redis')
        await sleep(OUTAGE)
        await services('restart', 'redis')
        const tRestart = performance.now()
        const deadline = tRestart + 10_000
        while (lanes.some((l) => l.limiter.storeDown) && performance.now() < deadline) await sleep(20)
        await sleep(1000)
        running = false
        await Promise.all(loops)
        await Promise.all(clients.map((c) => c.close()))

        const report: string[] = []
        for (const lane of lanes) {
          const { mode, samples, errors } = lane
          const thrown = samples.filter((s) => s.thrown !== undefined)
          expect(
            thrown.map((s) => String(s.thrown)),
            mode,
          ).toEqual([])
          const maxLatency = Math.max(...samples.map((s) => s.latency))
          expect(maxLatency, `${mode}: slowest answer (ms)`).toBeLessThan(TIMEOUT + MARGIN)

          // Healthy: Redis decides.
          const before = samples.filter((s) => s.start + s.latency < tKill)
          expect(before.length, mode).toBeGreaterThan(100)
          expect(
            before.filter((s) => s.storeError !== undefined),
            mode,
          ).toEqual([])

          // Outage (from a moment after the kill to the restart): the failure policy decides.
          const during = samples.filter((s) => s.start > tKill + TIMEOUT + 50 && s.start + s.latency < tRestart)
          expect(during.length, mode).toBeGreaterThan(100)
          expect(new Set(during.map((s) => s.storeError)), mode).toEqual(new Set([mode]))
          if (mode === 'open') expect(during.every((s) => s.decision?.allowed && s.decision.reason === 'store_error')).toBe(true)
          if (mode === 'closed') expect(during.every((s) => !s.decision?.allowed && s.decision?.reason === 'store_error')).toBe(true)
          if (mode === 'fallback') {
            // Limited in memory: per key at most LIMIT admitted, then rejections with reason 'limit'.
            const fallback = samples.filter((s) => s.storeError === 'fallback')
            const admitted = new Map<string, number>()
            for (const s of fallback) if (s.decision?.allowed) admitted.set(s.key, (admitted.get(s.key) ?? 0) + 1)
            const span = Math.max(...fallback.map((s) => s.start)) - Math.min(...fallback.map((s) => s.start))
            expect(Math.max(...admitted.values())).toBeLessThanOrEqual(LIMIT + Math.ceil((span * LIMIT) / 60_000)) // + the refill meanwhile
            expect(fallback.some((s) => s.decision?.reason === 'limit')).toBe(true)
            expect(fallback.every((s) => s.decision?.reason === undefined || s.decision.reason === 'limit')).toBe(true)
          }

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

          // Telemetry saw the errors, and only during the outage; the circuit breaker kept them few.
          expect(errors.length, mode).toBeGreaterThan(0)
          expect(
            errors.every((e) => e.at > tKill && e.at < tRestart + recovery + 1),
            mode,
          ).toBe(true)
          expect(errors.every((e) => e.event.action === mode && e.event.operation === 'check')).toBe(true)
          expect(errors.length, mode).toBeLessThan(LOOPS + (tRestart + recovery - tKill) / RETRY + 10)

          const storeErrors = samples.filter((s) => s.storeError !== undefined).length
          report.push(
            `| ${mode} | ${samples.length} | ${before.length} | ${storeErrors} | ${errors.length} | ${Math.round(recovery)} ms | ${maxLatency.toFixed(1)} ms |`,
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
