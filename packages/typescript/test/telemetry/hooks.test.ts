// Telemetry hooks: which fire for which decision, in what order; throwing and rejecting hooks never reach the request; latency includes the store.
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  type DecisionEvent,
  HaltConfigError,
  type HaltWarning,
  InMemoryStore,
  type Outcome,
  RateLimiter,
  type Store,
  type StoreErrorEvent,
  type Telemetry,
} from '../../src/index.js'
import { view } from '../http/support.js'
import { asyncStore } from '../support/async-store.js'
import { fakeClock } from '../support/clock.js'

/** Records every hook call as `hook:outcome`. */
function recorder() {
  const calls: string[] = []
  const events: DecisionEvent[] = []
  const errors: StoreErrorEvent[] = []
  const sink: Telemetry = {
    onCheck: (e) => {
      calls.push(`check:${e.decision.reason ?? (e.decision.allowed ? 'pass' : '?')}`)
      events.push(e)
    },
    onAllowed: (e) => void calls.push(`allowed:${e.decision.reason ?? 'pass'}`),
    onBlocked: (e) => void calls.push(`blocked:${e.decision.reason}`),
    onError: (e) => {
      calls.push(`error:${e.action}`)
      errors.push(e)
    },
  }
  return { sink, calls, events, errors }
}

function limiterWith<S extends Store = InMemoryStore>(telemetry: RateLimiterOptionsTelemetry, store?: S) {
  const warnings: HaltWarning[] = []
  const limiter = new RateLimiter<S>({
    store: store ?? (new InMemoryStore({ sweepInterval: 0 }) as unknown as S),
    clock: fakeClock(),
    policy: { name: 'api', limit: 2, window: 60 },
    telemetry,
    onWarning: (w) => warnings.push(w),
  })
  return { limiter, warnings }
}
type RateLimiterOptionsTelemetry = ConstructorParameters<typeof RateLimiter>[0]['telemetry']

/** A real in-memory store behind an async facade that the test can take down. */
function downableStore() {
  const inner = new InMemoryStore({ sweepInterval: 0 })
  const ctl = { down: false }
  const store: Store = {
    synchronous: false,
    consume: async (...a) => {
      if (ctl.down) throw new Error('ECONNREFUSED 127.0.0.1:6379')
      return { ...inner.consume(...a) } as Outcome
    },
    peek: async (...a) => ({ ...inner.peek(...a) }) as Outcome,
    reset: async (...a) => inner.reset(...a),
    clear: async (...a) => inner.clear(...a),
  }
  return { store, ctl }
}

afterEach(() => {
  vi.useRealTimers()
})

describe('hooks', () => {
  it('onCheck then onAllowed or onBlocked, for every decision, exempt ones included; peek reports nothing', () => {
    const r = recorder()
    const { limiter } = limiterWith(r.sink)
    limiter.check('k')
    limiter.check('k')
    limiter.check('k')
    limiter.peek('k')
    limiter.check(view({ path: '/health' }))
    expect(r.calls).toEqual(['check:pass', 'allowed:pass', 'check:pass', 'allowed:pass', 'check:limit', 'blocked:limit', 'check:exempt', 'allowed:exempt'])
    expect(r.events[2]).toMatchObject({ key: 'k', cost: 1, decision: { allowed: false, reason: 'limit', policy: 'api' } })
  })

  it('several sinks are called in order, each with the same event', () => {
    const a = recorder()
    const b = recorder()
    const { limiter } = limiterWith([a.sink, b.sink])
    limiter.check('k')
    expect(a.calls).toEqual(['check:pass', 'allowed:pass'])
    expect(b.calls).toEqual(a.calls)
    expect(b.events[0]).toBe(a.events[0])
  })

  it('a store failure reaches onError first, then the failure policy decision with storeError', async () => {
    const r = recorder()
    const { store, ctl } = downableStore()
    const { limiter } = limiterWith(r.sink, store)
    await limiter.check('k')
    ctl.down = true
    await limiter.check('k')
    expect(r.calls).toEqual(['check:pass', 'allowed:pass', 'error:fallback', 'check:pass', 'allowed:pass'])
    expect(r.errors[0]).toMatchObject({ key: 'k', policy: 'api', operation: 'check', action: 'fallback' })
    expect(r.events[1]!.storeError).toBe('fallback')
    expect(r.events[0]!.storeError).toBeUndefined()
  })
})

describe('a failing hook never breaks a request', () => {
  const boom = () => {
    throw new Error('exporter down')
  }
  const reject = async () => {
    throw new Error('async exporter down')
  }

  for (const [name, hook] of [
    ['throws', boom],
    ['rejects', reject],
  ] as const) {
    it(`every hook ${name}: decisions are unchanged, on a synchronous and an asynchronous store, and the failure is reported once`, async () => {
      const bad: Telemetry = { onCheck: hook, onAllowed: hook, onBlocked: hook, onError: hook }
      const good = recorder()
      const sync = limiterWith([bad, good.sink])
      const decisions = [sync.limiter.check('k'), sync.limiter.check('k'), sync.limiter.check('k')]
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, false])
      expect(good.calls).toEqual(['check:pass', 'allowed:pass', 'check:pass', 'allowed:pass', 'check:limit', 'blocked:limit'])

      const { store, ctl } = downableStore()
      const remote = limiterWith([bad, good.sink], store)
      expect((await remote.limiter.check('k')).allowed).toBe(true)
      ctl.down = true
      expect(await remote.limiter.check('k')).toMatchObject({ allowed: true }) // fallback, despite onError failing too
      expect(good.errors).toHaveLength(1)

      await new Promise((ok) => setImmediate(ok)) // rejections are observed a turn later
      for (const w of [sync.warnings, remote.warnings]) {
        expect(w).toHaveLength(1)
        expect(w[0]!.code).toBe('HALT_TELEMETRY_HOOK_FAILED')
        expect(w[0]!.message).toContain('exporter down')
      }
    })
  }

  it('a hook that throws a non-Error, or returns a thenable that rejects, is handled the same way', async () => {
    // biome-ignore lint/suspicious/noThenProperty: a thenable that is not a Promise is what this test is about
    const thenable = { then: (_ok: unknown, fail: (e: unknown) => void) => fail('nope') }
    const { limiter, warnings } = limiterWith([
      {
        onCheck: () => {
          throw 42
        },
      },
      { onAllowed: () => thenable as unknown as Promise<void> },
    ])
    expect(limiter.check('k').allowed).toBe(true)
    expect(warnings.map((w) => w.code)).toEqual(['HALT_TELEMETRY_HOOK_FAILED'])
    expect(warnings[0]!.message).toContain('(42)')
  })
})

describe('latency', () => {
  it('durationMs covers the store call (fake timers: the store takes 7 ms)', async () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const inner = new InMemoryStore({ sweepInterval: 0 })
    const slow: Store = {
      synchronous: false,
      consume: async (...a) => {
        vi.advanceTimersByTime(7)
        return { ...inner.consume(...a) } as Outcome
      },
      peek: async (...a) => ({ ...inner.peek(...a) }) as Outcome,
      reset: async (...a) => inner.reset(...a),
      clear: async (...a) => inner.clear(...a),
    }
    const r = recorder()
    const { limiter } = limiterWith(r.sink, slow)
    await limiter.check('k')
    await limiter.check(view({ ip: '203.0.113.9' }))
    expect(r.events.map((e) => e.durationMs)).toEqual([7, 7])
    const fast = recorder()
    limiterWith(fast.sink).limiter.check('k')
    expect(fast.events[0]!.durationMs).toBe(0) // the fake timer did not move
  })

  it('an in-memory check takes well under a millisecond', () => {
    const r = recorder()
    const { limiter } = limiterWith(r.sink)
    for (let i = 0; i < 200; i++) limiter.check(`k${i}`)
    const sorted = r.events.map((e) => e.durationMs as number).sort((a, b) => a - b)
    expect(sorted[0]).toBeGreaterThanOrEqual(0)
    expect(sorted[100]).toBeLessThan(1)
  })

  it('async store: the event arrives after the store answered', async () => {
    const r = recorder()
    const { limiter } = limiterWith(r.sink, asyncStore())
    const p = limiter.check('k')
    expect(r.events).toHaveLength(0)
    await p
    expect(r.events).toHaveLength(1)
  })
})

describe('configuration', () => {
  const bad = (telemetry: unknown): HaltConfigError => {
    try {
      new RateLimiter({ policy: { limit: 1, window: 1 }, telemetry: telemetry as Telemetry })
    } catch (e) {
      expect(e).toBeInstanceOf(HaltConfigError)
      return e as HaltConfigError
    }
    throw new Error('expected a HaltConfigError')
  }

  it('rejects sinks that are not objects, hooks that are not functions, sinks without hooks, and the old hook names', () => {
    expect(bad(42).code).toBe('HALT_INVALID_TELEMETRY')
    expect(bad([{ onCheck: () => {} }, null]).message).toContain('telemetry[1] must be an object')
    expect(bad({ onBlocked: 'log' }).message).toContain('telemetry.onBlocked must be a function')
    expect(bad({}).message).toContain('has none of the hooks')
    expect(bad({ onDecision: () => {} }).message).toContain('telemetry.onDecision was renamed: use onCheck')
    expect(bad({ onCheck: () => {}, onStoreError: () => {} }).message).toContain('use onError')
  })

  it('accepts class instances (hooks on the prototype)', () => {
    class Counter {
      n = 0
      onCheck(): void {
        this.n++
      }
    }
    const c = new Counter()
    new RateLimiter({ policy: { limit: 1, window: 1 }, telemetry: c }).check('k')
    expect(c.n).toBe(1) // called with its own `this`
  })
})
