// Blocked-key cache: keys Redis rejected, answered in process (no round trip) while they stay rejected.
import { newOutcome, runStep } from '../../core/algorithms/kernel.js'
import type { Rule } from '../../core/policy.js'
import type { Outcome } from '../../core/types.js'

interface Entry {
  /** The policy's numbers (two Rule objects of one policy share entries). */
  signature: string
  /** The state Redis returned with the rejection. Frozen: a cooldown writes nothing. */
  state: Float64Array
  /** Add to the caller's `now` to get the time frame of the state (non-zero with the server's clock). */
  offset: number
}

/**
 * Remembers the state of keys that Redis rejected and answers later checks of those keys in process
 * while the algorithm, run on that state, still rejects them.
 *
 * Why this is sound: in Redis a key's state only gets worse for the client until it is reset or expires
 * (other checks consume; a cooldown writes nothing), so when the remembered state rejects a request, the
 * state in Redis rejects it too. Answered locally: cooldowns, `cost_exceeds_capacity`, and `limit` when the
 * policy has no `blockDuration` (with one, a `limit` rejection starts a cooldown, which Redis must record).
 * The price: a `reset()` made by another process is seen here only when the entry runs out (at the latest
 * when the rejection's retry time has passed); `reset()` and `clear()` on this store drop entries at once.
 */
export class BlockedKeyCache {
  private readonly entries = new Map<string, Entry>()

  constructor(readonly maxKeys: number) {}

  get size(): number {
    return this.entries.size
  }

  /** The outcome for `key` without a round trip, or undefined when Redis must decide. */
  answer(key: string, rule: Rule, signature: string, now: number, cost: number, peek: boolean): Outcome | undefined {
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    if (e.signature !== signature) {
      this.entries.delete(key)
      return undefined
    }
    const s = e.state.slice()
    const out = newOutcome()
    runStep(s, 0, now + e.offset, cost, rule, out)
    if (out.allowed || (out.reason === 'limit' && rule.blockMs > 0)) {
      if (!peek) this.entries.delete(key)
      return undefined
    }
    return out
  }

  /** Remember a rejected key's state (as returned by the script). */
  remember(key: string, rule: Rule, signature: string, state: Float64Array, offset: number): void {
    if (state.length !== rule.stateSize) return
    this.entries.delete(key)
    if (this.entries.size >= this.maxKeys) {
      const oldest = this.entries.keys().next()
      if (!oldest.done) this.entries.delete(oldest.value)
    }
    this.entries.set(key, { signature, state, offset })
  }

  delete(key: string): void {
    this.entries.delete(key)
  }

  /** Drop every entry whose key starts with `prefix`. */
  deletePrefix(prefix: string): void {
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key)
  }
}
