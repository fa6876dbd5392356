// The compare-and-set loop: one key's atomic update for every store that cannot run the algorithm inside the server
// (PostgreSQL, MongoDB, DynamoDB, Memcached). Stores only move state; the deciding is `evaluate()`, here, once.
import { createHash } from 'node:crypto'
import { evaluate, fits } from '../core/algorithms/kernel.js'
import { HaltConfigError } from '../core/errors.js'
import type { Rule } from '../core/policy.js'
import { evaluateSet, type SetResult } from '../core/sets.js'
import type { Store } from '../core/store.js'
import type { Outcome } from '../core/types.js'
import { escapeKeyPart, storageKey } from './redis/keys.js'

/** One key's record as a server holds it: the spec's state array, a version the server compares, the expiry. */
export interface Versioned<V> {
  state: number[]
  version: V
  /** When the state is back to fresh (the outcome's `expiresAtMs`), in the limiter's timeline. */
  expiresAt: number
}

/** What a write stores. */
export interface Next {
  state: number[]
  /** In the limiter's timeline (ms): what an exact expiry check compares with `now`. */
  expiresAt: number
  /** The `now` of the check that computed it. */
  now: number
  /** Milliseconds from now until the server may drop the key: `max(1, ceil(expiresAt - now)) + expiryGraceMs`. */
  ttlMs: number
}

/**
 * What a conditional write reports: `{ ok: true }` (with the version it produced, when the server tells), or
 * `{ ok: false }` when another writer came first, with the record as it now stands when the server tells it
 * (`current`; null: there is none), so that the loop can try again without a read.
 */
export type Written<V> = { ok: true; version?: V } | { ok: false; current?: Versioned<V> | null }

export interface CasStoreOptions {
  /**
   * Conditional writes tried per check before the call fails (it then takes the limiter's `onStoreError`). A conflict
   * means another process wrote the key in between; after the first two, each retry waits a random 0..2^n ms (at most
   * 32 ms), so that writers of a hot key spread out. Default 100.
   */
  maxAttempts?: number
  /**
   * Milliseconds a key is kept past its expiry before the server (TTL) or `cleanupExpired()` may drop it. Default 0.
   * A grace of about the largest clock difference between your app servers keeps a server whose clock is behind from
   * seeing a key vanish early.
   */
  expiryGraceMs?: number
}

/** Counters for tests, benchmarks and dashboards. */
export interface CasCounters {
  /** Checks and peeks answered. */
  checks: number
  /** Reads sent to the server. */
  reads: number
  /** Conditional writes sent to the server. */
  writes: number
  /** Writes refused because another writer came first. */
  conflicts: number
  /** Checks that went on under a lock after repeated conflicts (stores that have one: PostgreSQL). */
  locked: number
  /**
   * Limit sets: units taken, per namespace, for requests the set then rejected, because another writer changed a
   * later policy's key between this check's reads and its writes (docs/sets.md). Rare, and never an over-admission.
   */
  setLeaked: Record<string, number>
}

/** A check gave up after `maxAttempts` conflicting writes: the limiter's failure policy answers it. */
export class CasConflictError extends Error {
  constructor(
    readonly key: string,
    readonly attempts: number,
  ) {
    super(`halt: ${attempts} conditional writes of ${JSON.stringify(key.slice(0, 200))} in a row lost to other writers; giving up on this check`)
    this.name = 'CasConflictError'
  }
}

/** SHA-256 of `key`'s UTF-8 bytes, base64url without padding (43 characters): how every SDK shortens a key. */
export function keyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('base64url')
}

/** Whether `s` holds a space, a control character (below 0x20) or DEL: what Memcached's text protocol cannot carry in a key. */
export function hasSpaceOrControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) return true
  }
  return false
}

/**
 * A store's key prefix, checked: at most 100 bytes (so that a hashed key stays short), no `{` or `}` (they would break
 * the identity's braces), and for Memcached no space or control characters.
 */
export function checkPrefix(prefix: unknown, storeName: string, memcached = false): string {
  if (typeof prefix !== 'string' || /[{}]/.test(prefix) || (memcached && hasSpaceOrControl(prefix)) || Buffer.byteLength(prefix, 'utf8') > 100) {
    throw new HaltConfigError(
      'HALT_INVALID_STORE_PREFIX',
      `${storeName}: prefix must be a string of at most 100 bytes without '{' or '}'${memcached ? ', spaces or control characters' : ''}, got ${JSON.stringify(prefix)}. Fix: prefix: 'halt:'.`,
    )
  }
  return prefix
}

/** Longest key the SQL, MongoDB and DynamoDB stores keep as it is (DynamoDB's partition keys stop at 2048 bytes, PostgreSQL's index entries near 2700). */
export const MAX_KEY_BYTES = 1024

/**
 * The key of `id` under `ns` (spec/KEYS.md), or, beyond `MAX_KEY_BYTES` of UTF-8, `<prefix><ns>:{%#<digest of the
 * key>}`: still under the namespace (so `clear(ns)` finds it), and never the key of another identity (an escaped
 * identity holds `%` only as `%25`, `%7B` or `%7D`).
 */
export function boundedKey(prefix: string, ns: string, id: string): string {
  const key = storageKey(prefix, ns, id)
  if (key.length * 3 <= MAX_KEY_BYTES || Buffer.byteLength(key, 'utf8') <= MAX_KEY_BYTES) return key
  return `${prefix}${escapeKeyPart(ns)}:{%#${keyDigest(key)}}`
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * A version for a write: random, 53 bits. Not a counter: a counter restarts when a key is deleted (reset, expiry) and
 * re-created, and a writer still holding the old record could then win a compare with a version that only looks the
 * same (ABA). A random version repeats with odds of 2^-53 per pair of writes of one key.
 */
export function newVersion(): number {
  return Math.floor(Math.random() * 2 ** 53)
}

/** One check waiting for its key. */
interface Check {
  rule: Rule
  now: number
  cost: number
  resolve(o: Outcome): void
  reject(error: unknown): void
}

/** One limit-set check waiting for its keys. */
interface SetCheck {
  rules: readonly Rule[]
  now: number
  costs: readonly number[]
  resolve(o: Outcome[]): void
  reject(error: unknown): void
}

/** Most checks of one key that go in one compare-and-set. */
const MAX_GROUP = 256

/** Most records a speculative store remembers (the last one it wrote per key), to write without reading first. */
const GUESSES = 10_000

/**
 * A store made of a compare-and-set primitive. Subclasses move state (read a key's record, write it if it is
 * unchanged, delete keys); this class runs the algorithm (`evaluate()`, the spec's pure function) between the read
 * and the write, and retries when another writer came first, so every check is atomic:
 *
 * 1. read the record (state, version); none: a fresh key;
 * 2. run the algorithm on it at `now` (for every check of the key waiting in this process, in order);
 * 3. unchanged state (a cooldown, a rejection that moves nothing): done, nothing written (the read is the decision's
 *    linearisation point); else write it on the condition that the version is still the one read (none: that the key
 *    is still absent, or expired), with a new random version;
 * 4. on conflict go back to 1 (after two conflicts, with a random wait of up to 2^n ms, at most 32 ms).
 *
 * Checks of one key in one process never race each other: while one is in flight the next ones wait, then go as one
 * group (one read, one write). A server whose failed write returns the current record (`speculation: 'always'`:
 * PostgreSQL, DynamoDB) skips step 1: the first write is computed from the record this process wrote last (or from
 * none), and a conflict hands over the record for the next attempt. A server whose failed write says only "no"
 * (`'adaptive'`: MongoDB) skips step 1 while such guesses mostly hit (a miss costs a read and a write more). An expired
 * record decides exactly as a missing one (property-tested), so a server that drops expired keys late, or never,
 * changes no decision.
 */
export abstract class CasStore<V> implements Store {
  readonly synchronous = false
  readonly counters: CasCounters = { checks: 0, reads: 0, writes: 0, conflicts: 0, locked: 0, setLeaked: {} }
  readonly maxAttempts: number
  readonly expiryGraceMs: number
  /** The latest `now` this store has seen: `cleanupExpired()` uses it by default. */
  protected lastNow = 0
  /**
   * When the first write of a check is computed from the record this process wrote last, without a read:
   * `'always'` when a conflicting write tells the current record (a wrong guess costs one write more, no read);
   * `'adaptive'` when it does not (a wrong guess costs a failed write, a read and a write: 3 round trips instead of 2),
   * so only while more than half the guesses would hit (one app server owns the key; not when several share it);
   * `'never'`: always read first (a server that tells no version after a write).
   */
  protected readonly speculation: 'always' | 'adaptive' | 'never' = 'never'
  /** Conflicts after which a check goes on under `exclusive()`, when the store has it. */
  protected readonly exclusiveAfter: number = 2
  /**
   * Whether a write with `prev` null also replaces a record that has expired (the condition "no record, or one whose
   * `e <= now`": PostgreSQL, MongoDB, DynamoDB). Then a guess that has expired by the check's time goes as such an
   * insert: expiry may have deleted the record since (a TTL, `cleanupExpired()`), and the insert succeeds either way,
   * where a write conditional on its version would find nothing. False for Memcached, whose `add` fails on any item.
   */
  protected readonly insertReplacesExpired: boolean = true
  /** The record this process wrote last, per key (stores that speculate; bounded). */
  private readonly guesses = new Map<string, Versioned<V>>()
  /**
   * How often the record this process wrote last was still the current one (an average over about the last 50
   * checks that could tell): `'adaptive'` speculates while it is above one half. Starts optimistic.
   */
  private hitRate = 1
  /** Per key with a check in flight: the checks waiting for it. */
  private readonly queues = new Map<string, Check[]>()
  /** Per limit set (its keys joined) with a check in flight: the set checks waiting for it. */
  private readonly setQueues = new Map<string, SetCheck[]>()

  /** How often the record this process wrote last was still current, lately (0..1; stores that speculate). */
  get guessHitRate(): number {
    return this.hitRate
  }

  constructor(options: CasStoreOptions, storeName: string) {
    const maxAttempts = options.maxAttempts ?? 100
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new HaltConfigError(
        'HALT_INVALID_CAS_ATTEMPTS',
        `${storeName}: maxAttempts must be a whole number >= 1, got ${String(options.maxAttempts)}. Fix: omit it (100).`,
      )
    }
    const grace = options.expiryGraceMs ?? 0
    if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0) {
      throw new HaltConfigError(
        'HALT_INVALID_EXPIRY_GRACE',
        `${storeName}: expiryGraceMs must be a whole number of milliseconds >= 0, got ${String(options.expiryGraceMs)}. Fix: omit it (0) or e.g. 1000.`,
      )
    }
    this.maxAttempts = maxAttempts
    this.expiryGraceMs = grace
  }

  /** The server's key of `id` under namespace `ns` (spec/KEYS.md). */
  abstract key(ns: string, id: string): string
  /** The record of `key`, or null when there is none. */
  protected abstract read(key: string, ns: string): Promise<Versioned<V> | null>
  /** Store `next` if the key still holds `prev` (same version), or, with `prev` null, if it holds nothing or an expired record. */
  protected abstract write(key: string, ns: string, next: Next, prev: Versioned<V> | null): Promise<Written<V>>
  /** Delete one key. */
  protected abstract remove(key: string, ns: string): Promise<void>
  /** Delete every key of `ns`, or every key of this store. */
  protected abstract removeAll(ns?: string): Promise<void>
  /**
   * Optional: run `apply` on the current record with the key locked against other writers, and store what it returns
   * (null: nothing to store). Used after `exclusiveAfter` conflicts, so that a hot key's writers queue instead of racing.
   */
  protected exclusive?(key: string, ns: string, apply: (current: Versioned<V> | null) => Next | null): Promise<void>

  consume(ns: string, id: string, rule: Rule, now: number, cost: number): Promise<Outcome> {
    if (now > this.lastNow) this.lastNow = now
    const key = this.key(ns, id)
    return new Promise((resolve, reject) => {
      const check: Check = { rule, now, cost, resolve, reject }
      const queue = this.queues.get(key)
      if (queue !== undefined) queue.push(check)
      else {
        this.queues.set(key, [])
        this.run(key, ns, [check])
      }
    })
  }

  /**
   * A limit set: read every policy's key, decide with `evaluateSet()`, then write each changed key with its own
   * conditional write, the policies with the least headroom first. A conflict before any units are taken starts
   * over from fresh reads, so the decision is as atomic as a single key's. A conflict after some were taken goes on
   * key by key: each remaining policy is stepped again on its current record, so none ever admits beyond its
   * limit; a request one of them now rejects is rejected, and the units already taken for it stay taken (counted in
   * `counters.setLeaked`). Set checks of one identity in one process go as one group, like single keys (docs/sets.md).
   */
  consumeSet(id: string, rules: readonly Rule[], now: number, costs: readonly number[]): Promise<Outcome[]> {
    if (now > this.lastNow) this.lastNow = now
    const keys = rules.map((r) => this.key(r.ns, id))
    const chain = keys.join('\n')
    return new Promise((resolve, reject) => {
      const check: SetCheck = { rules, now, costs, resolve, reject }
      const queue = this.setQueues.get(chain)
      if (queue !== undefined) queue.push(check)
      else {
        this.setQueues.set(chain, [])
        this.runSet(chain, keys, [check])
      }
    })
  }

  private runSet(chain: string, keys: string[], group: SetCheck[]): void {
    this.updateSet(keys, group)
      .then(
        (results) => {
          for (let j = 0; j < group.length; j++) (group[j] as SetCheck).resolve((results[j] as SetResult).outcomes)
        },
        (error) => {
          for (const c of group) c.reject(error)
        },
      )
      .finally(() => {
        const queue = this.setQueues.get(chain) as SetCheck[]
        if (queue.length === 0) this.setQueues.delete(chain)
        else this.runSet(chain, keys, queue.splice(0, MAX_GROUP))
      })
  }

  async peek(ns: string, id: string, rule: Rule, now: number): Promise<Outcome> {
    this.counters.reads++
    const record = await this.read(this.key(ns, id), ns)
    this.counters.checks++
    return evaluate(record?.state, now, 0, rule).outcome
  }

  async reset(ns: string, id: string): Promise<void> {
    const key = this.key(ns, id)
    this.guesses.delete(key)
    await this.remove(key, ns)
  }

  async clear(ns?: string): Promise<void> {
    this.guesses.clear()
    await this.removeAll(ns)
  }

  /**
   * Run a group of checks of one key as one compare-and-set. Checks of a key that arrive while one is in flight wait,
   * and go together next (in arrival order, up to 256): a hot key costs this process one round trip per group instead
   * of a race between its own checks, and other processes meet one writer per process.
   */
  private run(key: string, ns: string, group: Check[]): void {
    this.update(key, ns, group)
      .then(
        (outcomes) => {
          for (let i = 0; i < group.length; i++) (group[i] as Check).resolve(outcomes[i] as Outcome)
        },
        (error) => {
          for (const c of group) c.reject(error)
        },
      )
      .finally(() => {
        const queue = this.queues.get(key) as Check[]
        if (queue.length === 0) this.queues.delete(key)
        else this.run(key, ns, queue.splice(0, MAX_GROUP))
      })
  }

  /** The group's steps, in order, from `prev`; and what to store (null: nothing changed, when `prev` was read, not guessed). */
  private apply(prev: Versioned<V> | null, group: Check[], fresh: boolean): { outcomes: Outcome[]; next: Next | null } {
    let state: number[] | undefined = prev?.state
    let expiresAt = 0
    let first = Number.POSITIVE_INFINITY
    let last = Number.NEGATIVE_INFINITY
    const outcomes: Outcome[] = new Array(group.length)
    for (let i = 0; i < group.length; i++) {
      const c = group[i] as Check
      const r = evaluate(state, c.now, c.cost, c.rule)
      state = r.state
      outcomes[i] = r.outcome
      if (r.outcome.expiresAtMs > expiresAt) expiresAt = r.outcome.expiresAtMs
      if (c.now < first) first = c.now
      if (c.now > last) last = c.now
    }
    const rule = (group[group.length - 1] as Check).rule
    // Unchanged (cooldowns, rejections that move nothing): the stored expiry, derived from the same state, still holds.
    // A guess (`fresh` false) is written all the same: the conditional write is what confirms it.
    if (fresh && prev !== null && fits(prev.state, rule) && sameState(prev.state, state as number[])) return { outcomes, next: null }
    const ttlMs = Math.max(1, Math.ceil(expiresAt - last)) + this.expiryGraceMs
    // `now` (what an insert compares an existing record's expiry with) is the group's earliest: expired by then, the
    // record is equivalent to none for the first step, and the others follow from it.
    return { outcomes, next: { state: state as number[], expiresAt, now: first, ttlMs } }
  }

  private async update(key: string, ns: string, group: Check[]): Promise<Outcome[]> {
    const guess = this.speculation === 'never' ? undefined : (this.guesses.get(key) ?? null)
    // Guessing: the first write goes from the record this process wrote last (null: none), unread.
    let guessing = this.speculation === 'always' || (this.speculation === 'adaptive' && this.hitRate > 0.5)
    // `known`: the record as last seen (read, or handed over by a failed write); undefined: not known, read it.
    let known: Versioned<V> | null | undefined = guessing ? guess : undefined
    // A guess that has expired by the group's earliest `now` (`next.now`, what an insert compares the expiry with):
    // the record may be gone since (a TTL, `cleanupExpired()`), so it is written as a new one, on the insert's
    // condition ("none, or expired"), which holds whether it is still there or not; the state is still computed from
    // it (exactly the spec's), where none would decide the same.
    let asNew = guessing && guess != null && this.insertReplacesExpired
    let fresh = false
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      if (attempt >= this.exclusiveAfter && this.exclusive !== undefined) return this.locked(key, ns, group)
      if (attempt >= 2) await sleep(Math.random() * Math.min(32, 2 ** (attempt - 1)))
      if (known === undefined) {
        this.counters.reads++
        known = await this.read(key, ns)
        fresh = true
        // Not guessing this time: the read tells whether the guess would have hit.
        if (attempt === 0 && guess !== undefined) this.scoreGuess(known === null ? guess === null : guess !== null && known.version === guess.version)
      }
      const { outcomes, next } = this.apply(known, group, fresh)
      if (next === null) {
        this.counters.checks += group.length
        return outcomes
      }
      this.counters.writes++
      const insert = asNew && (guess as Versioned<V>).expiresAt <= next.now
      const written = await this.write(key, ns, next, insert ? null : known)
      if (written.ok) {
        this.counters.checks += group.length
        if (guessing && attempt === 0) this.scoreGuess(true)
        if (this.speculation !== 'never') this.remember(key, next, written.version)
        return outcomes
      }
      this.counters.conflicts++
      if (guessing && attempt === 0) this.scoreGuess(false)
      guessing = false
      asNew = false
      this.guesses.delete(key)
      known = written.current
      fresh = true
    }
    throw new CasConflictError(key, this.maxAttempts)
  }

  private async updateSet(keys: string[], group: SetCheck[]): Promise<SetResult[]> {
    const n = keys.length
    const first = group[0] as SetCheck
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      if (attempt >= 2) await sleep(Math.random() * Math.min(32, 2 ** (attempt - 1)))
      this.counters.reads += n
      const records = await Promise.all(keys.map((k, i) => this.read(k, (first.rules[i] as Rule).ns)))
      // The group's checks in order, each on the states the ones before it left.
      let states: (ArrayLike<number> | null | undefined)[] = records.map((r) => r?.state)
      const results = group.map((c) => {
        const r = evaluateSet(states, c.now, c.costs, c.rules)
        states = states.map((s, i) => r.states[i] ?? s)
        return r
      })
      const takes = (i: number) => results.some((r) => (r.outcomes[i] as Outcome).allowed && r.states[i] !== null)
      const writes: number[] = []
      for (let i = 0; i < n; i++) {
        const next = states[i]
        const prev = records[i]
        if (next === undefined || next === null || next === prev?.state) continue
        if (prev != null && fits(prev.state, first.rules[i] as Rule) && sameState(prev.state, next)) continue
        writes.push(i)
      }
      // Units are taken first from the policy closest to its limit: the one most likely to reject on a retry.
      const last = results[results.length - 1] as SetResult
      const headroom = (i: number) => (takes(i) ? (last.outcomes[i] as Outcome).remaining / (first.rules[i] as Rule).capacity : 2)
      writes.sort((a, b) => headroom(a) - headroom(b))
      const taken: number[] = []
      let retry = false
      for (let w = 0; w < writes.length; w++) {
        const i = writes[w] as number
        this.counters.writes++
        const next = this.setNext(group, results, i, states[i] as number[])
        const written = await this.write(keys[i] as string, (first.rules[i] as Rule).ns, next, records[i] as Versioned<V> | null)
        if (written.ok) {
          if (takes(i)) taken.push(i)
          continue
        }
        this.counters.conflicts++
        if (taken.length === 0) {
          retry = true
          break
        }
        await this.finishSet(keys, group, results, writes.slice(w), written.current, taken)
        break
      }
      if (retry) continue
      this.counters.checks += group.length
      return results
    }
    throw new CasConflictError(keys[0] as string, this.maxAttempts)
  }

  /**
   * After a conflict once units were taken: write the remaining policies one by one, the group's checks stepped again
   * on each one's current record. A check that took units here before keeps taking them if the policy still admits
   * it; if an enforced policy now rejects it, the check is rejected and takes nothing from the policies after. Other
   * checks take nothing here (a cooldown such a race would start is not written).
   */
  private async finishSet(
    keys: string[],
    group: SetCheck[],
    results: SetResult[],
    rest: number[],
    handed: Versioned<V> | null | undefined,
    taken: number[],
  ): Promise<void> {
    let known = handed
    for (const i of rest) {
      for (let attempt = 0; ; attempt++) {
        if (attempt >= this.maxAttempts) throw new CasConflictError(keys[i] as string, this.maxAttempts)
        if (attempt >= 2) await sleep(Math.random() * Math.min(32, 2 ** (attempt - 1)))
        if (known === undefined) {
          this.counters.reads++
          known = await this.read(keys[i] as string, ((group[0] as SetCheck).rules[i] as Rule).ns)
        }
        let state: number[] | undefined = known?.state
        const outs = new Map<number, Outcome>()
        const flipped: number[] = []
        let changed = false
        for (let j = 0; j < group.length; j++) {
          const c = group[j] as SetCheck
          const res = results[j] as SetResult
          const rule = c.rules[i] as Rule
          const planned = res.outcomes[i] as Outcome
          if (!res.allowed || !planned.allowed || res.states[i] === null) {
            if (planned.allowed) outs.set(j, evaluate(state, c.now, 0, rule).outcome)
            continue
          }
          const r = evaluate(state, c.now, c.costs[i] as number, rule)
          outs.set(j, r.outcome)
          if (!r.outcome.allowed) {
            if (!rule.shadow) flipped.push(j)
            continue
          }
          state = r.state
          changed = true
        }
        let ok = true
        if (changed) {
          this.counters.writes++
          const written = await this.write(
            keys[i] as string,
            ((group[0] as SetCheck).rules[i] as Rule).ns,
            this.setNext(group, results, i, state as number[], outs),
            known,
          )
          if (!written.ok) {
            this.counters.conflicts++
            known = written.current
            ok = false
          }
        }
        if (!ok) continue
        for (const [j, o] of outs) (results[j] as SetResult).outcomes[i] = o
        for (const j of flipped) {
          const res = results[j] as SetResult
          res.allowed = false
          res.states[i] = null
          for (const t of taken) {
            if (res.states[t] === null) continue
            const ns = ((group[j] as SetCheck).rules[t] as Rule).ns
            this.counters.setLeaked[ns] = (this.counters.setLeaked[ns] ?? 0) + ((group[j] as SetCheck).costs[t] as number)
          }
        }
        if (changed) taken.push(i)
        known = undefined
        break
      }
    }
  }

  /** What a group's write of policy `i` stores: the final state, the latest expiry of the checks that stepped it. */
  private setNext(group: SetCheck[], results: SetResult[], i: number, state: number[], outs?: Map<number, Outcome>): Next {
    let expiresAt = 0
    let first = Number.POSITIVE_INFINITY
    let last = Number.NEGATIVE_INFINITY
    for (let j = 0; j < group.length; j++) {
      const c = group[j] as SetCheck
      const o = outs?.get(j) ?? ((results[j] as SetResult).outcomes[i] as Outcome)
      if (o.expiresAtMs > expiresAt) expiresAt = o.expiresAtMs
      if (c.now < first) first = c.now
      if (c.now > last) last = c.now
    }
    return { state, expiresAt, now: first, ttlMs: Math.max(1, Math.ceil(expiresAt - last)) + this.expiryGraceMs }
  }

  /** The group under the store's lock: it cannot conflict. */
  private async locked(key: string, ns: string, group: Check[]): Promise<Outcome[]> {
    this.counters.locked++
    let result: Outcome[] = []
    await (this.exclusive as NonNullable<CasStore<V>['exclusive']>)(key, ns, (current) => {
      const { outcomes, next } = this.apply(current, group, true)
      result = outcomes
      return next
    })
    this.counters.checks += group.length
    return result
  }

  private scoreGuess(hit: boolean): void {
    this.hitRate += ((hit ? 1 : 0) - this.hitRate) / 50
  }

  /** Remember what this process wrote, for its next speculative write. */
  private remember(key: string, next: Next, version: V | undefined): void {
    // Delete first: refreshing a key already held must not evict another key. No version: no guess (an older one
    // would be stale now).
    this.guesses.delete(key)
    if (version === undefined) return
    if (this.guesses.size >= GUESSES) this.guesses.delete(this.guesses.keys().next().value as string)
    this.guesses.set(key, { state: next.state, version, expiresAt: next.expiresAt })
  }
}

/** Whether two states are equal, number for number. */
export function sameState(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
