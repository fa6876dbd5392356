// InMemoryStore: per-process state in flat Float64Array slabs; synchronous, bounded, self-cleaning.
import { newOutcome, runStep } from '../core/algorithms/kernel.js'
import { HaltConfigError } from '../core/errors.js'
import type { Rule } from '../core/policy.js'
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

/** One namespace: identity -> slot, and the slots' numbers (state, then expires_at). */
class Slab {
  readonly index = new Map<string, number>()
  readonly stride: number
  data: Float64Array
  readonly free: number[] = []
  top = 0
  constructor(stateSize: number) {
    this.stride = stateSize + 1
    this.data = new Float64Array(INITIAL_SLOTS * this.stride)
  }
  alloc(): number {
    const reused = this.free.pop()
    if (reused !== undefined) return reused
    if ((this.top + 1) * this.stride > this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    return this.top++
  }
  expiresAt(slot: number): number {
    return this.data[slot * this.stride + this.stride - 1] as number
  }
  delete(id: string, slot: number): void {
    this.index.delete(id)
    this.free.push(slot)
  }
}

/**
 * The default store: state lives in this process, updates are synchronous and
 * atomic (JavaScript runs one check at a time), so `limiter.check()` returns a
 * decision without a promise. About 60 bytes per key plus the key string.
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
    const slab = this.slab(ns, rule)
    let slot = slab.index.get(id)
    if (slot === undefined) {
      slot = this.insert(slab, id, now)
      rule.algorithm.init(slab.data, slot * slab.stride, now, rule)
    }
    const o = slot * slab.stride
    const data = slab.data
    const out = this.out
    runStep(data, o, now, cost, rule, out)
    data[o + slab.stride - 1] = out.expiresAtMs
    return out
  }

  peek(ns: string, id: string, rule: Rule, now: number): Outcome {
    const slab = this.slabs.get(ns)
    const slot = slab?.stride === rule.stateSize + 1 ? slab.index.get(id) : undefined
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
      slab.delete(id, slot)
      this.count--
    }
  }

  clear(ns?: string): void {
    if (ns === undefined) {
      this.slabs.clear()
      this.count = 0
      return
    }
    const slab = this.slabs.get(ns)
    if (slab !== undefined) {
      this.count -= slab.index.size
      this.slabs.delete(ns)
    }
  }

  size(ns?: string): number {
    return ns === undefined ? this.count : (this.slabs.get(ns)?.index.size ?? 0)
  }

  /**
   * Delete every key whose state has expired (is equivalent to a fresh one) at `now`,
   * by default the latest time this store has seen. Returns how many were removed.
   */
  cleanupExpired(now: number = this.lastNow): number {
    let removed = 0
    for (const slab of this.slabs.values()) {
      for (const [id, slot] of slab.index) {
        if (slab.expiresAt(slot) <= now) {
          slab.delete(id, slot)
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
    if (slab === undefined || slab.stride !== rule.stateSize + 1) {
      // A new namespace, or the policy changed its state layout (e.g. another precision).
      if (slab !== undefined) this.count -= slab.index.size
      slab = new Slab(rule.stateSize)
      this.slabs.set(ns, slab)
    }
    return slab
  }

  /**
   * Give `id` a slot. Each insertion also looks at the two oldest keys of the
   * namespace: an expired one is reclaimed, a live one moves to the back. So
   * idle keys are reclaimed as new ones arrive, and the front of the map holds
   * the keys touched longest ago, which are the ones evicted at the cap.
   */
  private insert(slab: Slab, id: string, now: number): number {
    let looked = 0
    for (const [oldId, oldSlot] of slab.index) {
      if (slab.expiresAt(oldSlot) <= now) {
        slab.delete(oldId, oldSlot)
        this.count--
      } else {
        slab.index.delete(oldId)
        slab.index.set(oldId, oldSlot)
      }
      if (++looked === 2) break
    }
    if (this.count >= this.maxKeys) this.evictOldest(slab)
    const slot = slab.alloc()
    slab.index.set(id, slot)
    this.count++
    return slot
  }

  private evictOldest(preferred: Slab): void {
    const from = preferred.index.size > 0 ? preferred : [...this.slabs.values()].find((s) => s.index.size > 0)
    if (from === undefined) return
    const first = from.index.entries().next()
    if (first.done) return
    from.delete(first.value[0], first.value[1])
    this.count--
  }
}
