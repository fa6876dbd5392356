// Core types shared by algorithms, stores and the limiter.

/** The five algorithms. Use the `Algorithm` constants rather than raw strings. */
export const Algorithm = {
  TOKEN_BUCKET: 'token_bucket',
  FIXED_WINDOW: 'fixed_window',
  SLIDING_WINDOW: 'sliding_window',
  LEAKY_BUCKET: 'leaky_bucket',
  GCRA: 'gcra',
} as const
export type AlgorithmName = (typeof Algorithm)[keyof typeof Algorithm]

/** How the HTTP layer turns a request into an identity. */
export const KeyStrategy = {
  IP: 'ip',
  USER: 'user',
  API_KEY: 'api_key',
  COMPOSITE: 'composite',
  CUSTOM: 'custom',
} as const
export type KeyStrategyName = (typeof KeyStrategy)[keyof typeof KeyStrategy]

/** Why a request was not simply admitted. */
export type Reason = 'limit' | 'cooldown' | 'penalty' | 'quota' | 'exempt' | 'store_error' | 'cost_exceeds_capacity'

/** A duration: seconds as a number, or a string such as `'500ms'`, `'30s'`, `'1m'`, `'1h'`, `'1d'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`

/**
 * A rate-limiting policy: plain data, validated when the limiter is created.
 *
 * @example
 * const policy: Policy = { name: 'api', limit: 100, window: '1m', burst: 120 }
 */
export interface Policy {
  /** Namespaces the counters: two policies never share state. Default `'default'`. */
  name?: string
  /** Units (requests, or cost units) per window. */
  limit: number
  /** Window length: seconds, or a duration string like `'1m'`. */
  window: Duration
  /** Capacity of bucket-style algorithms (token bucket, GCRA, leaky bucket). Defaults to `limit`. */
  burst?: number
  /** Default `token_bucket`. */
  algorithm?: AlgorithmName
  /** Default cost of one request. Default 1. */
  cost?: number
  /** Cooldown after the limit is exceeded: every request is rejected for this long. Default 0. */
  blockDuration?: Duration
  /** Sliding window only: sub-buckets per window (memory per key grows with it). Default 10. */
  precision?: number
  /** Leaky bucket only: `'meter'` rejects when full (default); `'shaping'` admits with a `delay`. */
  leakyMode?: 'meter' | 'shaping'
  /** HTTP layer: how a request maps to an identity. Default `ip`. */
  keyStrategy?: KeyStrategyName
  /**
   * `'enforce'` (default) or `'shadow'`: a shadow policy is evaluated and reported (telemetry events with
   * `shadow: true`, `stats().shadowBlocked`) but never rejects a request nor adds headers. Its counters are the
   * policy's own, so switching it to `'enforce'` later keeps them.
   */
  mode?: PolicyMode
}

/** Whether a policy rejects requests (`'enforce'`) or only reports what it would do (`'shadow'`). */
export type PolicyMode = 'enforce' | 'shadow'

/** The outcome of one check, as returned by `limiter.check()`. */
export interface Decision {
  allowed: boolean
  /** The policy's limit (units per window). */
  limit: number
  /** Whole units left after this check. */
  remaining: number
  /** Epoch seconds at which the limit is fully available again. */
  resetAt: number
  /** Seconds until a request of this cost can pass; 0 when allowed. */
  retryAfter: number
  /** Name of the policy that decided. */
  policy: string
  /** Why it was rejected (or `exempt`); undefined for a plain admission. */
  reason?: Reason
  /** Leaky bucket in shaping mode: seconds the caller should wait before serving. Otherwise 0. */
  delay: number
  /**
   * A limiter with several policies (or shadow ones): each policy's own decision, in the limiter's order. A policy
   * that would have admitted a request the others rejected reports its state as it stands (nothing was taken).
   */
  policies?: Decision[]
  /**
   * True on the decision of a shadow policy (in `policies`, and in telemetry), and on the decision of a limiter whose
   * every policy is shadow: that one always admits and sends no headers.
   */
  shadow?: boolean
}

/**
 * What an algorithm step produces, in milliseconds (the spec's outcome).
 * Stores return it; the limiter turns it into a `Decision`.
 */
export interface Outcome {
  allowed: boolean
  remaining: number
  resetAtMs: number
  retryAfterMs: number
  reason: 'limit' | 'cooldown' | 'cost_exceeds_capacity' | undefined
  delayMs: number
  /** When the state becomes equivalent to a fresh one: the key's expiry. */
  expiresAtMs: number
}

/** Mutable numeric state: a slab of a typed array or a plain array. */
export type State = { [index: number]: number; readonly length: number }
