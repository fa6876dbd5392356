// Failure policy over an asynchronous store: timeout, fail open / closed / in-memory fallback, recovery.
import { describe, expect, it } from 'vitest'
import { Deadlines } from '../../src/core/failover.js'
import { InMemoryStore, type Outcome, RateLimiter, type Store, type StoreErrorEvent, StoreTimeoutError } from '../../src/index.js'
import { fakeClock } from '../support/clock.js'

/** A real in-memory store behind an async facade whose health the test controls. */
function flakyStore() {
  const inner = new InMemoryStore({ sweepInterval: 0 })
  const ctl = { mode: 'up' as 'up' | 'down' | 'hang', calls: 0 }
  const gate = async <T>(f: () => T): Promise<T> => {
    ctl.calls++
    if (ctl.mode === 'down') throw new Error('ECONNREFUSED')
    if (ctl.mode === 'hang') return new Promise<T>(() => {})
    return f()
  }
  const store: Store = {
    synchronous: false,
    consume: (...a) => gate(() => ({ ...inner.consume(...a) }) as Outcome),
    peek: (...a) => gate(() => ({ ...inner.peek(...a) }) as Outcome),
    reset: (...a) => gate(() => inner.reset(...a)),
    clear: (...a) => gate(() => inner.clear(...a)),
    size: (...a) => gate(() => inner.size(...a)),
  }
  return { store, ctl }
}

function setup(onStoreError: 'open' | 'closed' | 'fallback') {
  const { store, ctl } = flakyStore()
  const clock = fakeClock()
  const errors: StoreErrorEvent[] = []
  const limiter = new RateLimiter({
    store,
    clock,
    policy: { name: 'p', limit: 2, window: 60 },
    timeout: 20,
    retryStoreAfter: 1000,
    onStoreError,
    telemetry: { onError: (e) => errors.push(e) },
  })
  return { limiter, ctl, clock, errors }
}

describe('failure policy', () => {
  it('fallback: limits in memory while the store is down, and returns to the store by itself', async () => {
    const { limiter, ctl, clock, errors } = setup('fallback')
    expect((await limiter.check('k')).allowed).toBe(true)
    ctl.mode = 'down'
    const during = []
    for (let i = 0; i < 3; i++) during.push(await limiter.check('k'))
    expect(during.map((d) => d.allowed)).toEqual([true, true, false])
    expect(errors.length).toBe(1) // the circuit opened: later calls did not hit the dead store
    expect(errors[0]).toMatchObject({ key: 'k', policy: 'p', operation: 'check', action: 'fallback' })
    expect(limiter.storeDown).toBe(true)
    ctl.mode = 'up'
    clock.advance(1000)
    const callsBefore = ctl.calls
    expect((await limiter.check('k')).allowed).toBe(true) // the store still had 1 unit left
    expect(ctl.calls).toBe(callsBefore + 1)
    expect(limiter.storeDown).toBe(false)
    expect((await limiter.check('k')).allowed).toBe(false)
  })

  it('open: admits with reason store_error', async () => {
    const { limiter, ctl } = setup('open')
    ctl.mode = 'down'
    const d = await limiter.check('k')
    expect(d).toMatchObject({ allowed: true, reason: 'store_error', remaining: 2 })
  })

  it('closed: rejects with reason store_error and a retryAfter', async () => {
    const { limiter, ctl } = setup('closed')
    ctl.mode = 'down'
    const d = await limiter.check('k')
    expect(d).toMatchObject({ allowed: false, reason: 'store_error', retryAfter: 1 })
  })

  it('a hanging store times out: the request is answered after the timeout, never hangs', async () => {
    const { limiter, ctl, errors } = setup('closed')
    ctl.mode = 'hang'
    const t0 = performance.now()
    const d = await limiter.check('k')
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(d).toMatchObject({ allowed: false, reason: 'store_error' })
    expect(String((errors[0]?.error as Error).message)).toMatch(/timed out after 20 ms/)
  })

  it('only one probe goes to the store while it is being retried', async () => {
    const { limiter, ctl, clock } = setup('fallback')
    ctl.mode = 'down'
    await limiter.check('k')
    clock.advance(1000)
    ctl.mode = 'hang'
    const calls = ctl.calls
    await Promise.all([1, 2, 3, 4].map(() => limiter.check('k')))
    expect(ctl.calls).toBe(calls + 1)
  })

  it('rejects a bad failure configuration at construction', () => {
    expect(() => new RateLimiter({ policy: { limit: 1, window: 1 }, onStoreError: 'ignore' as never })).toThrow(
      /onStoreError must be 'open', 'closed' or 'fallback'/,
    )
    expect(() => new RateLimiter({ policy: { limit: 1, window: 1 }, timeout: 0 })).toThrow(/timeout must be a positive number/)
  })
})

describe('Deadlines: per-call timeouts on one timer', () => {
  const settleAfter = (ms: number, value: number) => new Promise<number>((r) => setTimeout(() => r(value), ms))

  it('a call is failed after the timeout, never before, and a call that answers in time keeps its answer', async () => {
    const d = new Deadlines(60)
    const calls = Array.from({ length: 40 }, async (_, i) => {
      // Calls start over 80 ms and answer after 0..120 ms: both sides of the deadline, out of order.
      await new Promise((r) => setTimeout(r, (i * 2) % 80))
      const start = performance.now()
      const answerMs = (i * 37) % 121
      try {
        return { answerMs, value: await d.run(settleAfter(answerMs, i)), elapsed: performance.now() - start }
      } catch (error) {
        return { answerMs, error, elapsed: performance.now() - start }
      }
    })
    for (const r of await Promise.all(calls)) {
      if (r.answerMs <= 40) expect(r.error).toBeUndefined() // well inside the timeout
      if (r.answerMs >= 90) expect(r.error).toBeInstanceOf(StoreTimeoutError) // well past it
      if (r.error !== undefined) expect(r.elapsed).toBeGreaterThanOrEqual(59)
      if (r.error !== undefined) expect(r.elapsed).toBeLessThan(60 + 150)
    }
  })

  it('a store that answers at once leaves nothing queued', async () => {
    const d = new Deadlines(1000)
    for (let i = 0; i < 5000; i++) expect(await d.run(Promise.resolve(i))).toBe(i)
    expect((d as unknown as { queue: unknown[]; head: number }).queue.length).toBe(0)
  })
})
