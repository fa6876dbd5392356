// The harness of the fault tests (redis-failover, cas-failover): one limiter per onStoreError mode, each under a load
// of concurrent request loops while the test takes its server away; what every outage must show is judged here once.
import { Worker } from 'node:worker_threads'
import { expect } from 'vitest'
import { type Decision, type DecisionEvent, type OnStoreError, RateLimiter, type Store, type StoreErrorEvent } from '../../src/index.js'

export const MODES: OnStoreError[] = ['open', 'closed', 'fallback']
export const LIMIT = 50
export const RETRY = 200
const KEYS = 20

export interface Sample {
  key: string
  start: number
  latency: number
  decision?: Decision
  storeError?: OnStoreError
  thrown?: unknown
}

export interface Lane {
  mode: OnStoreError
  limiter: RateLimiter<Store>
  events: Map<Decision, DecisionEvent>
  errors: { at: number; event: StoreErrorEvent }[]
  samples: Sample[]
}

/** A limiter on `store` failing as `mode`, whose telemetry the lane keeps. */
export function makeLane(mode: OnStoreError, store: Store, timeout: number): Lane {
  const events = new Map<Decision, DecisionEvent>()
  const errors: Lane['errors'] = []
  const limiter = new RateLimiter<Store>({
    store,
    policy: { name: 'api', limit: LIMIT, window: 60 },
    timeout,
    retryStoreAfter: RETRY,
    onStoreError: mode,
    telemetry: {
      onCheck: (e) => events.set(e.decision, e),
      onError: (event) => errors.push({ at: performance.now(), event }),
    },
  })
  return { mode, limiter, events, errors, samples: [] }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** `loops` request loops per lane, each a check every 2 ms over 20 keys, until `stop()`. */
export function load(lanes: Lane[], loops: number): { stop(): Promise<void> } {
  let running = true
  const all = lanes.flatMap((l) =>
    Array.from({ length: loops }, async (_, loop) => {
      for (let i = 0; running; i++) {
        const start = performance.now()
        const sample: Sample = { key: `user:${(loop * 7 + i) % KEYS}`, start, latency: 0 }
        try {
          const d = await l.limiter.check(sample.key)
          sample.decision = d
          sample.storeError = l.events.get(d)?.storeError
        } catch (e) {
          sample.thrown = e
        }
        sample.latency = performance.now() - start
        l.samples.push(sample)
        await sleep(2)
      }
    }),
  )
  return {
    stop: async () => {
      running = false
      await Promise.all(all)
    },
  }
}

/**
 * The healthy phase before an outage: at least 1 s, and until every lane has answered more than `least` times (a slow
 * emulator on a loaded machine takes longer), for at most 15 s (then `judgeOutage` says how many it got).
 */
export async function healthy(lanes: Lane[], least: number): Promise<void> {
  const deadline = performance.now() + 15_000
  await sleep(1000)
  while (lanes.some((l) => l.samples.length <= least) && performance.now() < deadline) await sleep(50)
}

/**
 * What every outage must show on a lane: nothing thrown, no answer past the timeout (+ `margin`); before `tDown` the
 * store decided every check; between `tDead` (+ the timeout) and `tUp` the failure policy decided every one, as
 * configured (fallback: limited in memory). Returns the samples before the outage and the slowest answer.
 */
export function judgeOutage(
  l: Lane,
  t: { tDown: number; tDead: number; tUp: number; timeout: number; margin: number; least: number },
): { before: Sample[]; slowest: number } {
  const { mode, samples } = l
  expect(
    samples.filter((s) => s.thrown !== undefined).map((s) => String(s.thrown)),
    mode,
  ).toEqual([])
  const slowest = Math.max(...samples.map((s) => s.latency))
  expect(slowest, `${mode}: slowest answer (ms)`).toBeLessThan(t.timeout + t.margin)
  const before = samples.filter((s) => s.start + s.latency < t.tDown)
  expect(before.length, `${mode}: answers before the outage`).toBeGreaterThan(t.least)
  expect(
    before.filter((s) => s.storeError !== undefined),
    `${mode}: store errors before the outage`,
  ).toEqual([])
  const during = samples.filter((s) => s.start > t.tDead + t.timeout + 50 && s.start + s.latency < t.tUp)
  expect(during.length, `${mode}: answers during the outage`).toBeGreaterThan(t.least)
  expect(new Set(during.map((s) => s.storeError)), mode).toEqual(new Set([mode]))
  if (mode === 'open') expect(during.every((s) => s.decision?.allowed && s.decision.reason === 'store_error')).toBe(true)
  if (mode === 'closed') expect(during.every((s) => !s.decision?.allowed && s.decision?.reason === 'store_error')).toBe(true)
  if (mode === 'fallback') {
    // Limited in memory: per key at most LIMIT admitted (+ the refill meanwhile), then rejections with reason 'limit'.
    const fallback = samples.filter((s) => s.storeError === 'fallback')
    const admitted = new Map<string, number>()
    for (const s of fallback) if (s.decision?.allowed) admitted.set(s.key, (admitted.get(s.key) ?? 0) + 1)
    const span = Math.max(...fallback.map((s) => s.start)) - Math.min(...fallback.map((s) => s.start))
    expect(Math.max(...admitted.values())).toBeLessThanOrEqual(LIMIT + Math.ceil((span * LIMIT) / 60_000))
    expect(fallback.every((s) => s.decision?.reason === undefined || s.decision.reason === 'limit')).toBe(true)
  }
  expect(l.errors.length, `${mode}: store errors seen by telemetry`).toBeGreaterThan(0)
  expect(l.errors.every((e) => e.event.action === mode && e.event.operation === 'check')).toBe(true)
  return { before, slowest }
}

// Runs judged only when the machine let the test process run: a probe in a worker thread (not on the event loop: code
// under test that blocks the loop must not pass for a disturbance) sleeps 5 ms at a time and keeps its worst
// oversleep. A failed run in which the probe stalled for STALL ms or more was disturbed by the machine, not by the
// store, and runs again (up to ATTEMPTS times); a failure in an undisturbed run, or in the last one, fails at once.
const STALL = 100
const ATTEMPTS = 3

const PROBE = `
const { workerData } = require('node:worker_threads')
const stop = new Int32Array(workerData.stop)
const worst = new Float64Array(workerData.worst)
while (Atomics.load(stop, 0) === 0) {
  const t = performance.now()
  Atomics.wait(stop, 0, 0, 5)
  worst[0] = Math.max(worst[0], performance.now() - t - 5)
}
`

/** A probe thread: `stop()` ends it and gives the worst oversleep (ms). */
function probe(): { stop(): Promise<number> } {
  const stop = new SharedArrayBuffer(4)
  const worst = new SharedArrayBuffer(8)
  const worker = new Worker(PROBE, { eval: true, workerData: { stop, worst } })
  return {
    async stop() {
      Atomics.store(new Int32Array(stop), 0, 1)
      Atomics.notify(new Int32Array(stop), 0)
      await new Promise((r) => worker.once('exit', r))
      return (new Float64Array(worst)[0] as number) ?? 0
    },
  }
}

/** Runs `once(attempt)` (attempt 1, 2, ...) until it passes; returns its report with the probe's figures. */
export async function undisturbed(once: (attempt: number) => Promise<string>): Promise<string> {
  const disturbed: string[] = []
  for (let attempt = 1; ; attempt++) {
    const p = probe()
    let report: string
    try {
      report = await once(attempt)
    } catch (e) {
      const worst = Math.round(await p.stop())
      if (worst < STALL || attempt === ATTEMPTS) {
        if (e instanceof Error) e.message += ` (${[`worst stall of this process: ${worst} ms`, ...disturbed].join('; ')})`
        throw e
      }
      disturbed.push(`run ${attempt} failed (${String(e instanceof Error ? e.message : e).split('\n')[0]}) while this process stalled ${worst} ms`)
      continue
    }
    return [report, `Worst stall of this process: ${Math.round(await p.stop())} ms`, ...disturbed].join('\n')
  }
}

/** When the last of `samples` that the failure policy answered ended (0: none did). */
export function lastFailure(samples: Sample[]): number {
  return Math.max(0, ...samples.filter((s) => s.storeError !== undefined).map((s) => s.start + s.latency))
}
