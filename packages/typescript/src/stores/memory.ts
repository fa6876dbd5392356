// InMemoryStore: per-process state in flat Float64Array slabs; synchronous, bounded, self-cleaning.
import { expiresAt, newOutcome, runStep } from '../core/algorithms/kernel.js'
import { HaltConfigError } from '../core/errors.js'
import type { Rule } from '../core/policy.js'
import { evaluateSet } from '../core/sets.js'
import type { SyncStore } from '../core/store.js'
import type { Outcome } from '../core/types.js'

export interface InMemoryStoreOptions {
  /**
   * Most keys held at once (all policies together). Default 1,000,000.
   * At the cap, expired keys go first; then the key inserted (or last rotated)
   * longest ago is forgotten, so that identity starts afresh. Memory stays bounded
   * under a flood of random keys.
   */
  maxKeys?: number
  /** Milliseconds between sweeps of expired keys (an unref'd timer). 0 turns the timer off. Default 60,000. */
  sweepInterval?: number
}

const INITIAL_SLOTS = 64

/**
 * One namespace: identity -> slot, and per slot its state in one Float64Array (expiry is read
 * from the state itself). A ring of slots in insertion order drives lazy reclamation and eviction.
 */
class Slab {
  readonly index = new Map<string, number>()
  readonly stride: number
  data: Float64Array
  /** slot -> identity (undefined when the slot is free). */
  readonly ids: (string | undefined)[] = []
  readonly free: number[] = []
  top = 0
  /** Ring of slots, oldest first; `queued[slot]` = 1 while the slot is in the ring (at most once). */
  private ring = new Int32Array(INITIAL_SLOTS)
  private head = 0
  private length = 0
  private queued = new Uint8Array(INITIAL_SLOTS)

  /** The namespace's rule as last seen (expiry is computed with it). */
  rule: Rule

  constructor(rule: Rule) {
    this.rule = rule
    this.stride = rule.stateSize
    this.data = new Float64Array(INITIAL_SLOTS * this.stride)
  }

  get size(): number {
    return this.index.size
  }

  alloc(id: string): number {
    let slot = this.free.pop()
    if (slot === undefined) {
      slot = this.top++
      if (slot * this.stride >= this.data.length) {
        const bigger = new Float64Array(this.data.length * 2)
        bigger.set(this.data)
        this.data = bigger
        const q = new Uint8Array(this.queued.length * 2)
        q.set(this.queued)
        this.queued = q
      }
    }
    this.index.set(id, slot)
    this.ids[slot] = id
    if (this.queued[slot] === 0) this.enqueue(slot)
    return slot
  }

  expiresAt(slot: number): number {
    return expiresAt(this.data, slot * this.stride, this.rule)
  }

  delete(slot: number): void {
    const id = this.ids[slot]
    if (id === undefined) return
    this.index.delete(id)
    this.ids[slot] = undefined
    this.free.push(slot)
  }

  /** The oldest live slot in the ring, taken out of it; -1 when none. Freed slots are dropped on the way. */
  takeOldest(): number {
    while (this.length > 0) {
      const slot = this.ring[this.head] as number
      this.head = (this.head + 1) % this.ring.length
      this.length--
      this.queued[slot] = 0
      if (this.ids[slot] !== undefined) return slot
    }
    return -1
  }

  enqueue(slot: number): void {
    if (this.length === this.ring.length) {
      const bigger = new Int32Array(this.ring.length * 2)
      for (let i = 0; i < this.length; i++) bigger[i] = this.ring[(this.head + i) % this.ring.length] as number
      this.ring = bigger
      this.head = 0
    }
    this.ring[(this.head + this.length) % this.ring.length] = slot
    this.length++
    this.queued[slot] = 1
  }
}

/**
 * The default store: state lives in this process, updates are synchronous and
 * atomic (JavaScript runs one check at a time), so `limiter.check()` returns a
 * decision without a promise. A token bucket key costs 24 bytes of state plus the map entry and the key string.
 *
 * @example
 * const limiter = new RateLimiter({ store: new InMemoryStore({ maxKeys: 100_000 }), policy: presets.PUBLIC_API })
 */
export class InMemoryStore implements SyncStore {
  readonly synchronous = true
  readonly maxKeys: number
  private readonly slabs = new Map<string, Slab>()
  private readonly out: Outcome = newOutcome()
  private scratch: Float64Array = new Float64Array(16)
  private count = 0
  private lastNow = 0
  /** The slab of the rule last used: one limiter on one policy skips the namespace lookup. */
  private lastRule: Rule | undefined
  private lastNs: string | undefined
  private lastSlab: Slab | undefined
  private timer: ReturnType<typeof setInterval> | undefined

  constructor(options: InMemoryStoreOptions = {}) {
    const maxKeys = options.maxKeys ?? 1_000_000
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new HaltConfigError(
        'HALT_INVALID_MAX_KEYS',
        `InMemoryStore: maxKeys must be a whole number >= 1, got ${String(options.maxKeys)}. Fix: maxKeys: 100000.`,
      )
    }
    const sweep = options.sweepInterval ?? 60_000
    if (typeof sweep !== 'number' || !(sweep >= 0)) {
      throw new HaltConfigError('HALT_INVALID_SWEEP_INTERVAL', `InMemoryStore: sweepInterval must be milliseconds >= 0, got ${String(options.sweepInterval)}.`)
    }
    this.maxKeys = maxKeys
    if (sweep > 0) {
      this.timer = setInterval(() => this.cleanupExpired(), sweep)
      ;(this.timer as { unref?: () => void }).unref?.()
    }
  }

  consume(ns: string, id: string, rule: Rule, now: number, cost: number): Outcome {
    if (now > this.lastNow) this.lastNow = now
    const slab = rule === this.lastRule && ns === this.lastNs && this.lastSlab !== undefined ? this.lastSlab : this.slab(ns, rule)
    let slot = slab.index.get(id)
    if (slot === undefined) {
      slot = this.insert(slab, id, now)
      rule.algorithm.init(slab.data, slot * slab.stride, now, rule)
    }
    runStep(slab.data, slot * slab.stride, now, cost, rule, this.out)
    return this.out
  }

  /** A limit set, atomic like every call here (one check runs at a time): read each state, decide, write. */
  consumeSet(id: string, rules: readonly Rule[], now: number, costs: readonly number[]): Outcome[] {
    if (now > this.lastNow) this.lastNow = now
    const states: (number[] | undefined)[] = new Array(rules.length)
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i] as Rule
      const slab = this.slabs.get(rule.ns)
      const slot = slab?.stride === rule.stateSize ? slab.index.get(id) : undefined
      if (slab === undefined || slot === undefined) continue
      // A plain copy: cheaper than a typed-array view, and evaluateSet copies what it steps anyway.
      const s: number[] = new Array(slab.stride)
      for (let j = 0, o = slot * slab.stride; j < slab.stride; j++) s[j] = slab.data[o + j] as number
      states[i] = s
    }
    const result = evaluateSet(states, now, costs, rules)
    for (let i = 0; i < rules.length; i++) {
      const state = result.states[i]
      if (state === null || state === undefined) continue
      const rule = rules[i] as Rule
      const slab = this.slab(rule.ns, rule)
      const slot = slab.index.get(id) ?? this.insert(slab, id, now)
      slab.data.set(state, slot * slab.stride)
    }
    return result.outcomes
  }

  peek(ns: string, id: string, rule: Rule, now: number): Outcome {
    const slab = this.slabs.get(ns)
    const slot = slab?.stride === rule.stateSize ? slab.index.get(id) : undefined
    let s = this.scratch
    if (s.length < rule.stateSize) s = this.scratch = new Float64Array(rule.stateSize)
    if (slab !== undefined && slot !== undefined) {
      s.set(slab.data.subarray(slot * slab.stride, slot * slab.stride + rule.stateSize))
    } else {
      rule.algorithm.init(s, 0, now, rule)
    }
    runStep(s, 0, now, 0, rule, this.out)
    return this.out
  }

  reset(ns: string, id: string): void {
    const slab = this.slabs.get(ns)
    const slot = slab?.index.get(id)
    if (slab !== undefined && slot !== undefined) {
      slab.delete(slot)
      this.count--
    }
  }

  clear(ns?: string): void {
    this.lastRule = undefined
    this.lastSlab = undefined
    if (ns === undefined) {
      this.slabs.clear()
      this.count = 0
      return
    }
    const slab = this.slabs.get(ns)
    if (slab !== undefined) {
      this.count -= slab.size
      this.slabs.delete(ns)
    }
  }

  size(ns?: string): number {
    return ns === undefined ? this.count : (this.slabs.get(ns)?.size ?? 0)
  }

  /**
   * Delete every key whose state has expired (is equivalent to a fresh one) at `now`,
   * by default the latest time this store has seen. Returns how many were removed.
   */
  cleanupExpired(now: number = this.lastNow): number {
    let removed = 0
    for (const slab of this.slabs.values()) {
      for (let slot = 0; slot < slab.top; slot++) {
        if (slab.ids[slot] !== undefined && slab.expiresAt(slot) <= now) {
          slab.delete(slot)
          removed++
        }
      }
    }
    this.count -= removed
    return removed
  }

  /** Stop the sweep timer. The store stays usable. */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private slab(ns: string, rule: Rule): Slab {
    let slab = this.slabs.get(ns)
    if (slab === undefined || slab.stride !== rule.stateSize) {
      // A new namespace, or the policy changed its state layout (e.g. another precision).
      if (slab !== undefined) this.count -= slab.size
      slab = new Slab(rule)
      this.slabs.set(ns, slab)
    }
    slab.rule = rule
    this.lastRule = rule
    this.lastNs = ns
    this.lastSlab = slab
    return slab
  }

  /**
   * Give `id` a slot. Each insertion also looks at the two oldest keys of the
   * namespace: an expired one is reclaimed, a live one goes to the back of the
   * ring. So idle keys are reclaimed as new ones arrive (in O(1) per insertion),
   * and the front of the ring holds the keys inserted or checked here longest
   * ago: at the cap, those are the ones forgotten.
   */
  private insert(slab: Slab, id: string, now: number): number {
    for (let looked = 0; looked < 2; looked++) {
      const slot = slab.takeOldest()
      if (slot < 0) break
      if (slab.expiresAt(slot) <= now) {
        slab.delete(slot)
        this.count--
      } else {
        slab.enqueue(slot)
      }
    }
    if (this.count >= this.maxKeys) this.evictOldest(slab)
    const slot = slab.alloc(id)
    this.count++
    return slot
  }

  private evictOldest(preferred: Slab): void {
    const from = preferred.size > 0 ? preferred : [...this.slabs.values()].find((s) => s.size > 0)
    const slot = from === undefined ? -1 : from.takeOldest()
    if (from === undefined || slot < 0) return
    from.delete(slot)
    this.count--
  }
}
