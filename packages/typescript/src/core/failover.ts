// What a limiter does when its store fails or is slow: per-call timeout, a circuit breaker, and the
// configured outcome (fail open, fail closed, or an in-memory fallback until the store answers again).
import { HaltConfigError } from './errors.js'

export type OnStoreError = 'open' | 'closed' | 'fallback'

export interface FailoverOptions {
  /** Milliseconds a store call may take before it counts as failed. Default 500. */
  timeout?: number
  /**
   * The decision while the store fails: `'fallback'` (default) limits with an
   * in-memory store in this process; `'open'` admits (reason `store_error`);
   * `'closed'` rejects (reason `store_error`).
   */
  onStoreError?: OnStoreError
  /** After a failure, milliseconds before the store is tried again (one probe at a time). Default 1000. */
  retryStoreAfter?: number
}

/** Thrown into the failure path when a store call exceeds its timeout. */
export class StoreTimeoutError extends Error {
  constructor(ms: number) {
    super(`store call timed out after ${ms} ms`)
    this.name = 'StoreTimeoutError'
  }
}

export function validateFailover(o: FailoverOptions): Required<FailoverOptions> {
  const timeout = o.timeout ?? 500
  const retryStoreAfter = o.retryStoreAfter ?? 1000
  const onStoreError = o.onStoreError ?? 'fallback'
  if (typeof timeout !== 'number' || !(timeout > 0) || !Number.isFinite(timeout)) {
    throw new HaltConfigError('HALT_INVALID_TIMEOUT', `timeout must be a positive number of milliseconds, got ${String(o.timeout)}. Fix: timeout: 500.`)
  }
  if (typeof retryStoreAfter !== 'number' || !(retryStoreAfter >= 0) || !Number.isFinite(retryStoreAfter)) {
    throw new HaltConfigError(
      'HALT_INVALID_TIMEOUT',
      `retryStoreAfter must be milliseconds >= 0, got ${String(o.retryStoreAfter)}. Fix: retryStoreAfter: 1000.`,
    )
  }
  if (onStoreError !== 'open' && onStoreError !== 'closed' && onStoreError !== 'fallback') {
    throw new HaltConfigError(
      'HALT_INVALID_ON_STORE_ERROR',
      `onStoreError must be 'open', 'closed' or 'fallback', got ${String(o.onStoreError)}. Fix: onStoreError: 'fallback' (limit in memory while the store is down).`,
    )
  }
  return { timeout, retryStoreAfter, onStoreError }
}

/** Resolve `p`, or reject with `StoreTimeoutError` after `ms`. The timer is always cleared. */
export function withTimeout<T>(p: T | Promise<T>, ms: number): Promise<T> {
  if (!(p instanceof Promise)) return Promise.resolve(p)
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeoutError(ms)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

/**
 * A circuit breaker over the store. Closed: every call goes to the store. After a
 * failure it opens for `retryStoreAfter` ms (calls take the failure path without
 * waiting); then one probe call goes to the store, and its result closes or reopens it.
 */
export class Circuit {
  private openUntil = 0
  private probing = false
  failures = 0

  constructor(private readonly retryAfter: number) {}

  /** Whether this call may go to the store (at time `now`, ms). */
  allows(now: number): boolean {
    if (this.openUntil === 0) return true
    if (now < this.openUntil || this.probing) return false
    this.probing = true
    return true
  }

  success(): void {
    this.openUntil = 0
    this.probing = false
  }

  failure(now: number): void {
    this.failures++
    this.probing = false
    this.openUntil = now + Math.max(1, this.retryAfter)
  }

  get isOpen(): boolean {
    return this.openUntil !== 0
  }
}
