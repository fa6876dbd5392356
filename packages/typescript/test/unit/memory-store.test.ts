// InMemoryStore: synchronous, bounded by maxKeys, expired keys reclaimed lazily, by sweep and on demand.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { compilePolicy, HaltConfigError, InMemoryStore, RateLimiter } from '../../src/index.js'
import { fakeClock } from '../support/clock.js'

const rule = compilePolicy({ name: 'p', limit: 2, window: 10 })

describe('InMemoryStore', () => {
  afterEach(() => vi.useRealTimers())

  it('never holds more than maxKeys under a flood of distinct keys', () => {
    const store = new InMemoryStore({ maxKeys: 1000, sweepInterval: 0 })
    for (let i = 0; i < 50_000; i++) store.consume(rule.ns, `flood:${i}`, rule, 1_000 + i, 1)
    expect(store.size()).toBe(1000)
  })

  it('at the cap forgets the key touched longest ago: that identity starts fresh', () => {
    const store = new InMemoryStore({ maxKeys: 3, sweepInterval: 0 })
    const t = 1_000
    for (const k of ['a', 'b', 'c']) {
      store.consume(rule.ns, k, rule, t, 2)
    }
    store.consume(rule.ns, 'd', rule, t, 2) // evicts one of the oldest
    expect(store.size()).toBe(3)
    const fresh = ['a', 'b', 'c'].filter((k) => store.peek(rule.ns, k, rule, t).remaining === 2)
    expect(fresh).toHaveLength(1)
    expect(store.peek(rule.ns, 'd', rule, t).remaining).toBe(0)
  })

  it('reclaims expired keys first when new keys arrive (lazy)', () => {
    const store = new InMemoryStore({ maxKeys: 1_000_000, sweepInterval: 0 })
    for (let i = 0; i < 100; i++) store.consume(rule.ns, `old:${i}`, rule, 0, 1)
    // A token bucket of 2 per 10 s that took 1 unit is full again after 5 s.
    for (let i = 0; i < 100; i++) store.consume(rule.ns, `new:${i}`, rule, 6_000, 1)
    expect(store.size()).toBe(100)
  })

  it('cleanupExpired() removes exactly the keys whose state is back to fresh', () => {
    const store = new InMemoryStore({ sweepInterval: 0 })
    store.consume(rule.ns, 'short', rule, 0, 1) // full again at 5 s
    store.consume(rule.ns, 'long', rule, 0, 2) // full again at 10 s
    expect(store.cleanupExpired(4_999)).toBe(0)
    expect(store.cleanupExpired(5_000)).toBe(1)
    expect(store.size()).toBe(1)
    expect(store.cleanupExpired(10_000)).toBe(1)
    expect(store.size()).toBe(0)
  })

  it('keeps a blocked key until its cooldown ends', () => {
    const blocking = compilePolicy({ name: 'b', limit: 1, window: 1, blockDuration: 60 })
    const store = new InMemoryStore({ sweepInterval: 0 })
    store.consume(blocking.ns, 'k', blocking, 0, 1)
    store.consume(blocking.ns, 'k', blocking, 0, 1)
    expect(store.cleanupExpired(59_999)).toBe(0)
    expect(store.cleanupExpired(60_000)).toBe(1)
  })

  it('sweeps on an unref-ed timer, using the latest time it has seen', () => {
    vi.useFakeTimers()
    const store = new InMemoryStore({ sweepInterval: 1000 })
    const clock = fakeClock(0)
    const limiter = new RateLimiter({ store, clock, policy: { name: 'p', limit: 2, window: 10 } })
    const other = new RateLimiter({ store, clock, policy: { name: 'q', limit: 2, window: 10 } })
    limiter.check('a')
    clock.set(20_000)
    other.check('b')
    expect(store.size()).toBe(2)
    vi.advanceTimersByTime(1000)
    expect(store.size()).toBe(1)
    store.close()
  })

  it('starts afresh for a namespace whose state layout changed (e.g. a new precision)', () => {
    const store = new InMemoryStore({ sweepInterval: 0 })
    const p10 = compilePolicy({ name: 'sw', limit: 1, window: 10, algorithm: 'sliding_window' })
    const p20 = compilePolicy({ name: 'sw', limit: 1, window: 10, algorithm: 'sliding_window', precision: 20 })
    expect(store.consume(p10.ns, 'k', p10, 0, 1).allowed).toBe(true)
    expect(store.consume(p10.ns, 'k', p10, 0, 1).allowed).toBe(false)
    expect(store.consume(p20.ns, 'k', p20, 0, 1).allowed).toBe(true)
    expect(store.size()).toBe(1)
  })

  it('reuses freed slots', () => {
    const store = new InMemoryStore({ sweepInterval: 0 })
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 1000; i++) store.consume(rule.ns, `k${i}`, rule, 0, 1)
      for (let i = 0; i < 1000; i++) store.reset(rule.ns, `k${i}`)
    }
    expect(store.size()).toBe(0)
    expect(store.consume(rule.ns, 'k1', rule, 0, 1).remaining).toBe(1)
  })

  it('rejects a bad configuration clearly', () => {
    expect(() => new InMemoryStore({ maxKeys: 0 })).toThrow(HaltConfigError)
    expect(() => new InMemoryStore({ maxKeys: 1.5 })).toThrow(/maxKeys must be a whole number/)
    expect(() => new InMemoryStore({ sweepInterval: -1 })).toThrow(/sweepInterval/)
  })

  it('handles long, unicode and punctuation-heavy identities', () => {
    const store = new InMemoryStore({ sweepInterval: 0 })
    const ids = ['x'.repeat(10_000), '用户:🚀:ü', 'a:{b}:c*?[]\'"\\;--', '', ' ']
    for (const id of ids) expect(store.consume(rule.ns, id, rule, 0, 2).allowed).toBe(true)
    for (const id of ids) expect(store.consume(rule.ns, id, rule, 0, 1).allowed).toBe(false)
    expect(store.size()).toBe(ids.length)
  })
})
