// Ready-made policies for common endpoints and SaaS plans.
import { HaltConfigError } from './errors.js'
import type { Policy } from './types.js'

const preset = (p: Policy & { name: string }): Readonly<Policy & { name: string }> => Object.freeze(p)

/** Public API: 100 requests per minute, bursts of 120. */
export const PUBLIC_API = preset({ name: 'public_api', limit: 100, window: 60, burst: 120, algorithm: 'token_bucket' })
/** Login, signup, password reset: 5 per minute, bursts of 10, then a 5-minute cooldown. */
export const AUTH_ENDPOINTS = preset({ name: 'auth_endpoints', limit: 5, window: 60, burst: 10, blockDuration: 300, algorithm: 'token_bucket' })
/** Reports, exports, AI calls: 10 units per hour, bursts of 15, each request costs 10. */
export const EXPENSIVE_OPS = preset({ name: 'expensive_ops', limit: 10, window: 3600, burst: 15, cost: 10, algorithm: 'token_bucket' })
/** Strict: 20 per minute, bursts of 25. */
export const STRICT_API = preset({ name: 'strict_api', limit: 20, window: 60, burst: 25, algorithm: 'token_bucket' })
/** Generous: 1000 per minute, bursts of 1200. */
export const GENEROUS_API = preset({ name: 'generous_api', limit: 1000, window: 60, burst: 1200, algorithm: 'token_bucket' })

/**
 * A limit set: 10 per second (bursts of 20) and 10,000 per UTC day, decided as one (`policy: presets.PER_SECOND_AND_DAY`).
 */
export const PER_SECOND_AND_DAY: readonly Readonly<Policy & { name: string }>[] = Object.freeze([
  preset({ name: 'per_second', limit: 10, window: 1, burst: 20, algorithm: 'token_bucket' }),
  preset({ name: 'per_day', limit: 10_000, window: 86_400, algorithm: 'fixed_window' }),
])

/** Plan limits per hour. */
export const PLAN_FREE = preset({ name: 'plan_free', limit: 100, window: 3600, algorithm: 'token_bucket' })
export const PLAN_STARTER = preset({ name: 'plan_starter', limit: 500, window: 3600, algorithm: 'token_bucket' })
export const PLAN_PRO = preset({ name: 'plan_pro', limit: 2000, window: 3600, algorithm: 'token_bucket' })
export const PLAN_BUSINESS = preset({ name: 'plan_business', limit: 5000, window: 3600, algorithm: 'token_bucket' })
export const PLAN_ENTERPRISE = preset({ name: 'plan_enterprise', limit: 20000, window: 3600, algorithm: 'token_bucket' })

const PLANS: Record<string, Readonly<Policy & { name: string }>> = {
  free: PLAN_FREE,
  starter: PLAN_STARTER,
  pro: PLAN_PRO,
  business: PLAN_BUSINESS,
  enterprise: PLAN_ENTERPRISE,
}

/**
 * The policy of a plan, by name, case-insensitive: of the built-in plans, or of your own plan table
 * (`definePlans`).
 *
 * @example
 * getPlanPolicy('Pro') // PLAN_PRO: 2000 per hour
 * getPlanPolicy('team', myPlans) // myPlans.policy('team')
 */
export function getPlanPolicy(plan: string): Readonly<Policy & { name: string }>
export function getPlanPolicy(plan: string, table: { policy(plan: string): Policy }): Policy
export function getPlanPolicy(plan: string, table?: { policy(plan: string): Policy }): Policy {
  if (table !== undefined) return table.policy(plan)
  const p = typeof plan === 'string' ? PLANS[plan.trim().toLowerCase()] : undefined
  if (p === undefined) {
    throw new HaltConfigError(
      'HALT_UNKNOWN_PLAN',
      `unknown plan ${JSON.stringify(plan)}. Fix: use one of ${Object.keys(PLANS).join(', ')}, or pass your own policy.`,
    )
  }
  return p
}
