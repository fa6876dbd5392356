// What a limiter tells telemetry: the hooks and their events. Exporters (logging, metrics, Prometheus, OpenTelemetry) implement Telemetry.
import type { OnStoreError } from '../core/failover.js'
import type { Decision } from '../core/types.js'

/**
 * One decision of `check()`, as telemetry sees it. It never carries the request
 * itself nor any raw header value (an API key is only ever seen hashed, inside `key`).
 */
export interface DecisionEvent {
  /** The storage identity (`ip:203.0.113.7`, `apikey:<hash>`, ...); for an exempt request, the client's address key or `''`. */
  key: string
  cost: number
  decision: Decision
  /** Set when the store failed and the decision came from the failure policy. */
  storeError?: OnStoreError
  /**
   * Set when the deciding policy runs in shadow mode: `decision` says what the
   * policy decided (a rejection included) and the request was admitted anyway.
   */
  shadow?: boolean
  /** For a check made with a request: its `x-request-id` (printable, at most 64 characters), or an id made up for it. */
  requestId?: string
  /** Milliseconds the check took, the store call included (undefined for exempt requests, which reach no store). */
  durationMs?: number
}

/** A store call that failed or timed out. */
export interface StoreErrorEvent {
  error: unknown
  key: string
  policy: string
  operation: 'check' | 'peek'
  /** What the limiter did instead. */
  action: OnStoreError
}

/**
 * Hooks a limiter calls, every one optional (plain or async functions). A hook that throws, or returns a
 * promise that rejects, never affects the request: the failure is reported once
 * as the warning `HALT_TELEMETRY_HOOK_FAILED`.
 *
 * For each decision: `onCheck`, then `onAllowed` (exempt requests included) or
 * `onBlocked`. A store failure reaches `onError` first; the decision the failure
 * policy then takes follows with `storeError` set.
 *
 * @example
 * new RateLimiter({ policy, telemetry: [new LoggingTelemetry(), { onBlocked: (e) => alert(e.key) }] })
 */
export interface Telemetry {
  /** Every decision of `check()`. */
  onCheck?(event: DecisionEvent): void
  /** A decision that admits the request (reason `exempt` for exempt requests). */
  onAllowed?(event: DecisionEvent): void
  /** A decision that rejects the request (in shadow mode: that would have rejected it). */
  onBlocked?(event: DecisionEvent): void
  /** An admitted request took a policy from below the limiter's `nearLimit` fraction (default 0.8) of its capacity to it or beyond. */
  onNearLimit?(event: DecisionEvent): void
  /** A store call failed or timed out; the failure policy answered instead. */
  onError?(event: StoreErrorEvent): void
}

/** The `telemetry` option: one sink, or several called in order. */
export type TelemetryOption = Telemetry | readonly Telemetry[]
