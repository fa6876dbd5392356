// Errors Halt throws: configuration mistakes (at construction) and RateLimitExceeded (from wrap()).
import type { Decision } from './types.js'

const DOCS = 'docs/errors.md' // in the Halt repository

/**
 * A configuration mistake, raised when a limiter, policy or store is created,
 * never while serving a request. `code` is stable; `message` says what is wrong
 * and how to fix it; `docs` points at the explanation.
 *
 * @example
 * try { new RateLimiter({ policy: { limit: -1, window: 60 } }) }
 * catch (e) { if (e instanceof HaltConfigError) console.error(e.code) } // HALT_INVALID_LIMIT
 */
export class HaltConfigError extends Error {
  readonly code: string
  readonly docs: string
  constructor(code: string, message: string) {
    const docs = `${DOCS}#${code.toLowerCase()}`
    super(`${message} (${code}, see ${docs})`)
    this.name = 'HaltConfigError'
    this.code = code
    this.docs = docs
  }
}

/**
 * Thrown by functions made with `limiter.wrap()` when the call is over the limit.
 * Being limited is a normal outcome: `check()` returns a decision instead of throwing.
 */
export class RateLimitExceeded extends Error {
  readonly decision: Decision
  /** Seconds until a call of the same cost can pass. */
  readonly retryAfter: number
  constructor(decision: Decision) {
    super(`Rate limit exceeded for policy '${decision.policy}': retry after ${decision.retryAfter}s (${decision.reason ?? 'limit'})`)
    this.name = 'RateLimitExceeded'
    this.decision = decision
    this.retryAfter = decision.retryAfter
  }
}
