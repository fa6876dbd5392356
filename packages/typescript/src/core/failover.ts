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

/** A pending call: its deadline (performance.now() ms) and how to fail it; `reject` is cleared once it settles. */
interface Pending {
  readonly deadline: number
  reject: ((e: unknown) => void) | undefined
}

/**
 * Per-call timeouts with one timer. Every call of a limiter has the same timeout, so deadlines come in the
 * order calls start: a FIFO whose head is the next to expire, and one timer armed for it, instead of a
 * setTimeout, a clearTimeout and a Promise.race per call.
 */
export class Deadlines {
  private queue: Pending[] = []
  private head = 0
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(readonly ms: number) {}

  /** `p`'s result, or a rejection with `StoreTimeoutError` once `ms` have passed. */
  run<T>(p: T | Promise<T>): Promise<T> {
    if (!(p instanceof Promise)) return Promise.resolve(p)
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { deadline: performance.now() + this.ms, reject }
      this.queue.push(entry)
      if (this.timer === undefined) this.arm(this.ms)
      p.then(
        (v) => {
          if (entry.reject === undefined) return
          entry.reject = undefined
          this.trim()
          resolve(v)
        },
        (e) => {
          if (entry.reject === undefined) return
          entry.reject = undefined
          this.trim()
          reject(e)
        },
      )
    })
  }

  /** Drop settled calls from the head (calls mostly settle in order), so the queue holds only pending ones. */
  private trim(): void {
    const q = this.queue
    while (this.head < q.length && (q[this.head] as Pending).reject === undefined) this.head++
    if (this.head === q.length) {
      this.queue = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head)
      this.head = 0
    }
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.fire, Math.max(1, ms))
    this.timer.unref?.()
  }

  private readonly fire = (): void => {
    this.timer = undefined
    const now = performance.now()
    const q = this.queue
    while (this.head < q.length) {
      const e = q[this.head] as Pending
      if (e.reject !== undefined) {
        if (e.deadline > now) break
        const reject = e.reject
        e.reject = undefined
        reject(new StoreTimeoutError(this.ms))
      }
      this.head++
    }
    this.trim()
    if (this.head < this.queue.length) this.arm((this.queue[this.head] as Pending).deadline - now)
  }
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
