// The algorithm contract and the wrapper every algorithm shares (cooldown, block, expiry), per spec/README.md §1.
import type { Rule } from '../policy.js'
import type { Outcome, State } from '../types.js'

/** Slack allowed in comparisons of units (spec: EPS). */
export const EPS = 1e-9

/**
 * One algorithm, as three functions over a flat numeric state at offset `o`
 * (`s[o]` is always `blocked_until`). They read no clock and do no I/O; `step`
 * updates the state in place and writes the outcome into `out`.
 */
export interface AlgorithmImpl {
  readonly name: string
  /** Short code used in storage keys (`tb`, `gcra`, `fw`, `sw`, `lb`). */
  readonly code: string
  /** Window algorithms cap a request at `limit`; bucket algorithms at `burst`. */
  readonly windowed: boolean
  /** Number of state slots, including `blocked_until`. */
  size(rule: Rule): number
  /** Write the fresh state for time `now`. */
  init(s: State, o: number, now: number, rule: Rule): void
  /**
   * When the algorithm's part of the state becomes equivalent to a fresh one (its
   * `reset_at_ms` read from the state alone); the key expires at the later of this
   * and `blocked_until`.
   */
  idleAt(s: State, o: number, rule: Rule): number
  /** Bring the state up to `now`, try to take `cost`, fill `out` (not `expiresAtMs`). */
  step(s: State, o: number, now: number, cost: number, rule: Rule, out: Outcome): void
}

export function newOutcome(): Outcome {
  return { allowed: false, remaining: 0, resetAtMs: 0, retryAfterMs: 0, reason: undefined, delayMs: 0, expiresAtMs: 0 }
}

/** Whole units left of `capacity` when `used` are taken (spec: `max(0, floor(capacity - used + EPS))`). */
export function unitsLeft(capacity: number, used: number): number {
  return Math.max(0, Math.floor(capacity - used + EPS))
}

/** Fill `out` for a request rejected because it can never fit. */
export function costExceedsCapacity(out: Outcome, rule: Rule, remaining: number, resetAtMs: number): void {
  out.allowed = false
  out.reason = 'cost_exceeds_capacity'
  out.remaining = remaining
  out.resetAtMs = resetAtMs
  out.retryAfterMs = rule.windowMs
  out.delayMs = 0
}

/**
 * Run one step of `rule`'s algorithm on the state at `s[o]`, with the common
 * cooldown and block handling. The state must exist (call `init` for a new key).
 */
export function runStep(s: State, o: number, now: number, cost: number, rule: Rule, out: Outcome): void {
  const blockedUntil = s[o] as number
  if (now < blockedUntil) {
    cooldown(s, o, now, cost, rule, out, blockedUntil)
    return
  }
  rule.algorithm.step(s, o, now, cost, rule, out)
  if (out.reason === 'limit' && rule.blockMs > 0) {
    const until = now + rule.blockMs
    s[o] = until
    if (out.retryAfterMs < rule.blockMs) out.retryAfterMs = rule.blockMs
    if (out.resetAtMs < until) out.resetAtMs = until
  }
  const b = s[o] as number
  out.expiresAtMs = out.resetAtMs > b ? out.resetAtMs : b
}

/** When the state at `s[o]` expires: it is then equivalent to a missing one. */
export function expiresAt(s: State, o: number, rule: Rule): number {
  const idle = rule.algorithm.idleAt(s, o, rule)
  const blocked = s[o] as number
  return idle > blocked ? idle : blocked
}

/** Whether a stored state has the layout `rule` expects (else it is replaced by a fresh one). */
export function fits(state: ArrayLike<number> | undefined | null, rule: Rule): state is number[] {
  return state != null && state.length === rule.stateSize
}

/**
 * The pure form of an algorithm, as the spec states it:
 * `(state | undefined, now, cost, rule) -> { state, outcome }`. The input is not modified.
 * Stores that cannot run the algorithm natively (compare-and-set stores) use this.
 */
export function evaluate(state: ArrayLike<number> | undefined | null, now: number, cost: number, rule: Rule): { state: number[]; outcome: Outcome } {
  const next: number[] = new Array(rule.stateSize)
  if (fits(state, rule)) {
    for (let i = 0; i < next.length; i++) next[i] = state[i] as number
  } else {
    rule.algorithm.init(next, 0, now, rule)
  }
  const outcome = newOutcome()
  runStep(next, 0, now, cost, rule, outcome)
  return { state: next, outcome }
}

let scratch = new Float64Array(16)

/**
 * Reject during a cooldown. The algorithm runs on a copy so that `retryAfterMs`
 * also covers what it needs: a client that obeys Retry-After is then admitted.
 */
function cooldown(s: State, o: number, now: number, cost: number, rule: Rule, out: Outcome, blockedUntil: number): void {
  if (scratch.length < rule.stateSize) scratch = new Float64Array(rule.stateSize)
  for (let i = 0; i < rule.stateSize; i++) scratch[i] = s[o + i] as number
  rule.algorithm.step(scratch, 0, now, cost, rule, out)
  const wait = blockedUntil - now
  out.allowed = false
  out.reason = 'cooldown'
  out.remaining = 0
  if (out.retryAfterMs < wait) out.retryAfterMs = wait
  if (out.resetAtMs < blockedUntil) out.resetAtMs = blockedUntil
  out.delayMs = 0
  out.expiresAtMs = out.resetAtMs
}
