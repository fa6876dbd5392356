// The compare-and-set loop itself (src/stores/cas.ts), on an in-process record with writers injected between a
// check's read and its write: what the real servers cannot be made to do on cue. The stores are tested on servers.
import { describe, expect, it } from 'vitest'
import { compilePolicy, evaluate, RateLimiter } from '../../src/index.js'
import { CasConflictError, CasStore, type Next, type Versioned, type Written } from '../../src/stores/cas.js'

const T0 = 1_700_000_000_000

/** One server-side record per key, with a hook that runs between a read and the next write (another writer). */
class Table extends CasStore<number> {
  readonly rows = new Map<string, Versioned<number>>()
  interfere: ((key: string) => void) | undefined
  handBack = false
  reads = 0
  constructor(options: { maxAttempts?: number; speculation?: 'always' | 'adaptive' } = {}) {
    super({ maxAttempts: options.maxAttempts }, 'Table')
    if (options.speculation !== undefined) (this as unknown as { speculation: string }).speculation = options.speculation
    this.handBack = options.speculation === 'always'
  }
  key(ns: string, id: string): string {
    return `${ns}|${id}`
  }
  protected async read(key: string): Promise<Versioned<number> | null> {
    this.reads++
    const r = this.rows.get(key)
    return r === undefined ? null : { ...r, state: [...r.state] }
  }
  protected async write(key: string, _ns: string, next: Next, prev: Versioned<number> | null): Promise<Written<number>> {
    this.interfere?.(key)
    const cur = this.rows.get(key)
    const ok = prev === null ? cur === undefined || cur.expiresAt <= next.now : cur?.version === prev.version
    if (!ok) return this.handBack ? { ok: false, current: cur === undefined ? null : { ...cur } } : { ok: false }
    const version = Math.random()
    this.rows.set(key, { state: next.state, version, expiresAt: next.expiresAt })
    return { ok: true, version }
  }
  protected async remove(key: string): Promise<void> {
    this.rows.delete(key)
  }
  protected async removeAll(): Promise<void> {
    this.rows.clear()
  }
}

const rule = compilePolicy({ name: 'cas', limit: 10, window: 60 })

describe('the compare-and-set loop', () => {
  it('a writer that comes between the read and the write makes the check start over from what it wrote', async () => {
    const t = new Table()
    await t.consume(rule.ns, 'k', rule, T0, 1)
    let once = true
    t.interfere = (key) => {
      if (!once) return
      once = false
      const r = t.rows.get(key) as Versioned<number>
      const e = evaluate(r.state, T0, 4, rule) // another process takes 4
      t.rows.set(key, { state: e.state, version: -1, expiresAt: e.outcome.expiresAtMs })
    }
    const o = await t.consume(rule.ns, 'k', rule, T0, 1)
    expect(o.remaining).toBe(4) // 10 - 1 - 4 - 1: nothing lost
    expect(t.counters).toMatchObject({ conflicts: 1, writes: 3 })
  })

  it('gives up after maxAttempts lost writes with CasConflictError, which the limiter answers by its failure policy', async () => {
    const t = new Table({ maxAttempts: 5 })
    t.interfere = (key) => t.rows.set(key, { state: [0, 1, T0], version: Math.random(), expiresAt: T0 + 1 })
    await expect(t.consume(rule.ns, 'k', rule, T0, 1)).rejects.toBeInstanceOf(CasConflictError)
    expect(t.counters.writes).toBe(5)
    const errors: unknown[] = []
    const limiter = new RateLimiter({
      store: t,
      policy: { name: 'cas', limit: 10, window: 60 },
      onStoreError: 'closed',
      telemetry: { onError: (e) => errors.push(e.error) },
    })
    expect(await limiter.check('k')).toMatchObject({ allowed: false, reason: 'store_error' })
    expect(errors[0]).toBeInstanceOf(CasConflictError)
  })

  it('checks of one key in one process go as one group: one read and one write for 100 concurrent checks', async () => {
    const t = new Table()
    await t.consume(rule.ns, 'warm', rule, T0, 1)
    const before = { ...t.counters }
    const outs = await Promise.all(Array.from({ length: 100 }, () => t.consume(rule.ns, 'k', rule, T0, 1)))
    expect(outs.filter((o) => o.allowed).length).toBe(10)
    expect(outs.map((o) => o.remaining).slice(0, 10)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    // The first check goes alone (nothing was in flight), the 99 others wait and go together.
    expect(t.counters.reads - before.reads).toBe(2)
    expect(t.counters.writes - before.writes).toBe(2)
  })

  it('a rejection that changes nothing writes nothing', async () => {
    const t = new Table()
    const fw = compilePolicy({ name: 'fw', limit: 1, window: 60, algorithm: 'fixed_window' })
    await t.consume(fw.ns, 'k', fw, T0, 1)
    const writes = t.counters.writes
    for (let i = 0; i < 5; i++) expect((await t.consume(fw.ns, 'k', fw, T0 + i, 1)).allowed).toBe(false)
    expect(t.counters.writes).toBe(writes)
  })

  it('speculative: the first write needs no read, and a lost one hands back the record for the next', async () => {
    const t = new Table({ speculation: 'always' })
    await t.consume(rule.ns, 'k', rule, T0, 1) // a new key: one write
    await t.consume(rule.ns, 'k', rule, T0, 1) // the record this store wrote: one write
    expect(t.reads).toBe(0)
    expect(t.counters.writes).toBe(2)
    t.rows.set('cas:tb|k', { state: [0, 5, T0], version: 42, expiresAt: T0 + 30_000 }) // another process
    const o = await t.consume(rule.ns, 'k', rule, T0, 1)
    expect(o.remaining).toBe(4)
    expect(t.reads).toBe(0)
    expect(t.counters).toMatchObject({ writes: 4, conflicts: 1 })
  })

  it('remembers the last record of up to 10,000 keys; refreshing one it holds evicts no other', async () => {
    const t = new Table({ speculation: 'always' })
    const big = compilePolicy({ name: 'rr', limit: 1000, window: 60 }) // a taken token is back after 60 ms: records stay live
    for (let i = 0; i < 10_000; i++) await t.consume(big.ns, `k${i}`, big, T0, 1)
    await t.consume(big.ns, 'k9999', big, T0 + 1, 1) // held: refreshed, nothing evicted
    const writes = t.counters.writes
    await t.consume(big.ns, 'k0', big, T0 + 1, 1) // the oldest, still held: guessed right
    expect(t.counters.writes - writes).toBe(1)
    expect(t.counters.conflicts).toBe(0)
    await t.consume(big.ns, 'k10000', big, T0 + 1, 1) // a new key: the oldest (k1) makes room
    await t.consume(big.ns, 'k1', big, T0 + 1, 1)
    expect(t.counters.conflicts).toBe(1) // k1's guess was gone: the first write lost, the record came back with it
  })

  it('a guess that has expired goes as an insert: one write whether expiry deleted the record or not', async () => {
    for (const speculation of ['always', 'adaptive'] as const) {
      const t = new Table({ speculation })
      const r = compilePolicy({ name: 'idle', limit: 5, window: 10 }) // a token bucket: fresh again 2 s after a check
      await t.consume(r.ns, 'gone', r, T0, 1)
      await t.consume(r.ns, 'kept', r, T0, 1)
      t.rows.delete(t.key(r.ns, 'gone')) // deleted by expiry (a TTL, cleanupExpired())
      const before = { reads: t.reads, writes: t.counters.writes }
      for (const id of ['gone', 'kept']) expect((await t.consume(r.ns, id, r, T0 + 5_000, 1)).remaining).toBe(4)
      expect([t.reads - before.reads, t.counters.writes - before.writes, t.counters.conflicts]).toEqual([0, 2, 0])
      // Not expired yet, and deleted (a reset by another process): the write on its version finds nothing, and the
      // check goes again from none.
      t.rows.delete(t.key(r.ns, 'gone'))
      expect((await t.consume(r.ns, 'gone', r, T0 + 5_001, 1)).remaining).toBe(4)
      expect(t.counters.conflicts).toBe(1)
    }
  })

  it('adaptive: guesses while they hit (one write per check), reads first once another writer keeps winning', async () => {
    const t = new Table({ speculation: 'adaptive' })
    // Never rejects, so every check writes; a fixed window, so the state stays live (and a guess is not an insert).
    const big = compilePolicy({ name: 'big', limit: 1e6, window: 60, algorithm: 'fixed_window' })
    for (let i = 0; i < 20; i++) await t.consume(big.ns, `k${i % 4}`, big, T0 + i, 1)
    expect(t.reads).toBe(0) // one process owns the keys: every guess hits
    expect(t.counters.writes).toBe(20)
    // Another process writes every key between two checks of this one: a guess costs a lost write, a read and a write.
    const other = () => {
      for (const [key, r] of t.rows) t.rows.set(key, { ...r, version: Math.random() })
    }
    const cost = async () => {
      const before = { reads: t.reads, writes: t.counters.writes }
      other()
      await t.consume(big.ns, 'k0', big, T0 + 100, 1)
      return t.reads - before.reads + t.counters.writes - before.writes
    }
    expect(await cost()).toBe(3)
    let checks = 1
    while (t.guessHitRate > 0.5) {
      expect(await cost()).toBe(3)
      checks++
    }
    expect(checks).toBeLessThan(50)
    expect(await cost()).toBe(2) // no more guessing: read, then write
    // The reads keep scoring: once this process owns its keys again, guessing resumes.
    for (let i = 0; t.guessHitRate <= 0.5; i++) {
      expect(i).toBeLessThan(100)
      await t.consume(big.ns, 'k0', big, T0 + 200, 1)
    }
    const reads = t.reads
    await t.consume(big.ns, 'k0', big, T0 + 300, 1)
    expect(t.reads).toBe(reads)
  })
})

describe('limit sets on the compare-and-set loop (docs/sets.md)', () => {
  // 'tight' has the least headroom, so its key is written first; 'wide' second.
  const tight = compilePolicy({ name: 'tight', limit: 5, window: 60, algorithm: 'fixed_window' })
  const wide = compilePolicy({ name: 'wide', limit: 20, window: 60, algorithm: 'fixed_window' })
  const rules = [wide, tight]
  /** Another process takes `units` from `key` just before this process's next write to it. */
  const takeBefore = (t: Table, target: string, units: number) => {
    let once = true
    t.interfere = (key) => {
      if (!once || key !== target) return
      once = false
      const r = t.rows.get(key)
      const e = evaluate(r?.state, T0, units, key.startsWith('tight') ? tight : wide)
      t.rows.set(key, { state: e.state, version: -1, expiresAt: e.outcome.expiresAtMs })
    }
  }
  const used = (t: Table, key: string) => (t.rows.get(key)?.state[2] as number) ?? 0

  it('writes the policy closest to its limit first; a conflict there starts over with nothing taken', async () => {
    const t = new Table()
    await t.consumeSet('k', rules, T0, [1, 1])
    takeBefore(t, 'tight:fw|k', 3)
    const os = await t.consumeSet('k', rules, T0, [1, 1])
    expect(os.map((o) => o.remaining)).toEqual([18, 0])
    expect([used(t, 'wide:fw|k'), used(t, 'tight:fw|k')]).toEqual([2, 5])
    expect(t.counters).toMatchObject({ conflicts: 1, setLeaked: {} })
  })

  it('a conflict after units were taken steps the other policy again on its record: still admitted', async () => {
    const t = new Table()
    takeBefore(t, 'wide:fw|k', 7)
    const os = await t.consumeSet('k', rules, T0, [1, 1])
    expect(os.every((o) => o.allowed)).toBe(true)
    expect([used(t, 'wide:fw|k'), used(t, 'tight:fw|k')]).toEqual([8, 1])
    expect(t.counters).toMatchObject({ conflicts: 1, setLeaked: {} })
  })

  it('a group whose later policy filled up meanwhile: the checks it now rejects are rejected, the others admitted', async () => {
    const t = new Table()
    let writes = 0
    t.interfere = (key) => {
      if (key !== 'wide:fw|k' || ++writes !== 2) return
      const e = evaluate(t.rows.get(key)?.state, T0, 17, wide) // another process takes 17 of the 19 left
      t.rows.set(key, { state: e.state, version: -1, expiresAt: e.outcome.expiresAtMs })
    }
    // The first check goes alone; the three others wait for it and go as one group, which meets the other writer.
    const os = await Promise.all(Array.from({ length: 4 }, () => t.consumeSet('k', rules, T0, [1, 1])))
    expect(os.map((o) => o.every((x) => x.allowed))).toEqual([true, true, true, false])
    expect(os[3]?.[0]).toMatchObject({ allowed: false, reason: 'limit' })
    expect(used(t, 'wide:fw|k')).toBe(20)
    expect(used(t, 'tight:fw|k')).toBe(4)
    expect(t.counters.setLeaked).toEqual({ 'tight:fw': 1 })
  })

  it('if the other policy now rejects, the request is rejected, never over-admitted, and the units taken are counted', async () => {
    for (const handBack of [false, true]) {
      const t = new Table()
      t.handBack = handBack
      takeBefore(t, 'wide:fw|k', 20) // another process fills 'wide' between this check's read and its write
      const os = await t.consumeSet('k', rules, T0, [1, 1])
      expect(os[0]).toMatchObject({ allowed: false, reason: 'limit' })
      expect(used(t, 'wide:fw|k')).toBe(20)
      expect(used(t, 'tight:fw|k')).toBe(1)
      expect(t.counters.setLeaked).toEqual({ 'tight:fw': 1 })
      const d = new RateLimiter({ policy: [wide, tight].map((r) => r.policy), store: t, clock: () => T0 })
      await expect(d.check('k')).resolves.toMatchObject({ allowed: false, policy: 'wide' })
    }
  })

  it('set checks of one identity in one process go as one group: one read and one write per key', async () => {
    const t = new Table()
    const os = await Promise.all(Array.from({ length: 30 }, () => t.consumeSet('k', rules, T0, [1, 1])))
    expect(os.filter((o) => o.every((x) => x.allowed))).toHaveLength(5)
    expect([used(t, 'wide:fw|k'), used(t, 'tight:fw|k')]).toEqual([5, 5])
    expect(t.counters).toMatchObject({ conflicts: 0, reads: 4, writes: 4 })
  })
})
