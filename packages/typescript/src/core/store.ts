// The store contract: make one key's update atomic and expire idle keys. Stores know nothing of HTTP.
import type { Rule } from './policy.js'
import type { Outcome } from './types.js'

/**
 * A storage backend. A key is addressed by a namespace (`rule.ns`: the policy
 * name and algorithm code) and an identity (e.g. `ip:203.0.113.7`).
 *
 * `consume` must be atomic per key: load the state (a fresh one when missing,
 * expired or of the wrong layout), run `rule`'s algorithm step at `now` with
 * `cost`, save the new state with expiry `outcome.expiresAtMs`. Synchronous
 * stores may return a reused outcome object, valid until their next call.
 */
export interface Store {
  /** True when every method returns its result directly (no promise). */
  readonly synchronous: boolean
  consume(ns: string, id: string, rule: Rule, now: number, cost: number): Outcome | Promise<Outcome>
  /**
   * A limit set: one check of identity `id` against several rules (each under its `rule.ns`), decided as
   * `evaluateSet()` says (all or nothing across the enforced rules). `costs[i]` goes with `rules[i]`; the outcomes
   * come in the same order. Optional: a limiter with several policies (or shadow ones) needs it. Each store
   * documents how atomic it is (docs/sets.md).
   */
  consumeSet?(id: string, rules: readonly Rule[], now: number, costs: readonly number[]): Outcome[] | Promise<Outcome[]>
  /** The outcome of a cost-0 step, without writing anything. */
  peek(ns: string, id: string, rule: Rule, now: number): Outcome | Promise<Outcome>
  /** Forget one key. */
  reset(ns: string, id: string): void | Promise<void>
  /** Forget every key of a namespace, or of every namespace when none is given. */
  clear(ns?: string): void | Promise<void>
  /** Number of keys held (of a namespace, or in all). Optional for remote stores. */
  size?(ns?: string): number | Promise<number>
  /** Release timers and connections the store owns. */
  close?(): void | Promise<void>
}

/** A store whose every call returns directly: the limiter then answers without a promise. */
export interface SyncStore extends Store {
  readonly synchronous: true
  consume(ns: string, id: string, rule: Rule, now: number, cost: number): Outcome
  consumeSet?(id: string, rules: readonly Rule[], now: number, costs: readonly number[]): Outcome[]
  peek(ns: string, id: string, rule: Rule, now: number): Outcome
  reset(ns: string, id: string): void
  clear(ns?: string): void
  size(ns?: string): number
}

/** `T` for a synchronous store, `Promise<T>` otherwise. */
export type MaybePromise<S extends Store, T> = S extends SyncStore ? T : Promise<T>
