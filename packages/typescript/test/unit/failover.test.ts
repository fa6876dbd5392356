// Failure policy over an asynchronous store: timeout, fail open / closed / in-memory fallback, recovery.
import { describe, expect, it } from 'vitest'
import { InMemoryStore, type Outcome, RateLimiter, type Store, type StoreErrorEvent } from '../../src/index.js'
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
