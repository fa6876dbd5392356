// Plan tables: a SaaS's plans mapped to policies (and quotas), and the policy(req) resolver that picks one per request.
import { HaltConfigError } from '../core/errors.js'
import type { PolicyResolver } from '../core/limiter.js'
import { compilePolicy } from '../core/policy.js'
import type { Policy } from '../core/types.js'
import type { RequestView } from '../http/request.js'
import { type Quota, validateQuota } from './quota.js'

/** One plan: its rate-limit policy, and optionally its quota. */
export interface PlanEntry {
  policy: Policy
  quota?: Quota
}

/** The plans of a product, validated when defined. */
export interface PlanTable {
  /** Plan names as given (lookups ignore case and surrounding spaces). */
  readonly names: readonly string[]
  /** The plan used when a request's plan is missing or unknown. */
  readonly defaultPlan: string
  /** The policy of `plan` (case-insensitive); throws `HALT_UNKNOWN_PLAN` for a plan not in the table. */
  policy(plan: string): Policy
  /** The quota of `plan`, if it has one; throws `HALT_UNKNOWN_PLAN` for a plan not in the table. */
  quota(plan: string): Quota | undefined
  /** Whether `plan` is in the table. */
  has(plan: string): boolean
  /**
   * A `policy` function for `RateLimiter`: the policy of the plan `planOf(req)` names, the default plan's when it
   * names none or an unknown one. Pass `defaultPolicy: table.policy(table.defaultPlan)` with it.
   */
  resolver(planOf: (req: RequestView) => string | undefined | null): PolicyResolver
  /** The same for quotas (the HTTP `quota` option takes it): the plan's quota, or the default plan's. */
  quotaResolver(planOf: (req: RequestView) => string | undefined | null): (req: RequestView) => Quota | undefined
}

const norm = (plan: string) => plan.trim().toLowerCase()

/**
 * Define a plan table. Every policy is compiled (and every quota checked) now, so a mistake is a `HaltConfigError`
 * at startup. A plan maps to a policy, or to `{ policy, quota }`.
 *
 * @example
 * const plans = definePlans({
 *   free: { policy: presets.PLAN_FREE, quota: { name: 'calls_free', limit: 1_000, period: 'monthly' } },
 *   pro: { policy: presets.PLAN_PRO, quota: { name: 'calls_pro', limit: 100_000, period: 'monthly' } },
 * }, { defaultPlan: 'free' })
 * const limiter = new RateLimiter({
 *   policy: plans.resolver((req) => usersByKey.get(req.header('x-api-key') ?? '')?.plan),
 *   defaultPolicy: plans.policy('free'),
 *   keyStrategy: 'api_key',
 * })
 */
export function definePlans(table: Record<string, Policy | PlanEntry>, options: { defaultPlan?: string } = {}): PlanTable {
  if (table === null || typeof table !== 'object' || Object.keys(table).length === 0) {
    throw new HaltConfigError('HALT_INVALID_PLANS', 'definePlans: pass an object of plans, e.g. { free: presets.PLAN_FREE, pro: presets.PLAN_PRO }.')
  }
  const entries = new Map<string, PlanEntry>()
  const names: string[] = []
  const policyNames = new Map<string, string>()
  for (const [plan, value] of Object.entries(table)) {
    const key = norm(plan)
    if (key.length === 0 || entries.has(key)) {
      throw new HaltConfigError(
        'HALT_INVALID_PLANS',
        `definePlans: plan names must be non-empty and distinct ignoring case, got ${JSON.stringify(plan)} twice or empty.`,
      )
    }
    const entry: PlanEntry = value !== null && typeof value === 'object' && 'policy' in value ? (value as PlanEntry) : { policy: value as Policy }
    let rule: ReturnType<typeof compilePolicy>
    try {
      rule = compilePolicy(entry.policy)
    } catch (e) {
      throw new HaltConfigError('HALT_INVALID_PLANS', `definePlans: plan '${plan}': ${e instanceof Error ? e.message : String(e)}`)
    }
    const other = policyNames.get(rule.name)
    if (other !== undefined && other !== plan) {
      throw new HaltConfigError(
        'HALT_INVALID_PLANS',
        `definePlans: plans '${other}' and '${plan}' use the policy name '${rule.name}', so they would share counters. Fix: give each plan's policy its own name.`,
      )
    }
    policyNames.set(rule.name, plan)
    if (entry.quota !== undefined) validateQuota(entry.quota)
    entries.set(key, Object.freeze({ ...entry }))
    names.push(plan)
  }
  const defaultPlan = options.defaultPlan ?? (names[0] as string)
  if (typeof defaultPlan !== 'string' || !entries.has(norm(defaultPlan))) {
    throw new HaltConfigError('HALT_UNKNOWN_PLAN', `definePlans: defaultPlan ${JSON.stringify(defaultPlan)} is not one of ${names.join(', ')}.`)
  }
  const fallback = entries.get(norm(defaultPlan)) as PlanEntry
  const entry = (plan: string): PlanEntry => {
    const e = typeof plan === 'string' ? entries.get(norm(plan)) : undefined
    if (e === undefined) {
      throw new HaltConfigError('HALT_UNKNOWN_PLAN', `unknown plan ${JSON.stringify(plan)}. Fix: use one of ${names.join(', ')}, or add it to the table.`)
    }
    return e
  }
  const lookup = (planOf: (req: RequestView) => string | undefined | null, req: RequestView): PlanEntry => {
    const plan = planOf(req)
    return (typeof plan === 'string' ? entries.get(norm(plan)) : undefined) ?? fallback
  }
  const checkFn = (planOf: unknown) => {
    if (typeof planOf !== 'function')
      throw new HaltConfigError('HALT_INVALID_PLANS', 'plans.resolver(planOf): planOf must be a function of the request returning a plan name.')
  }
  return Object.freeze({
    names: Object.freeze(names),
    defaultPlan,
    policy: (plan: string) => entry(plan).policy,
    quota: (plan: string) => entry(plan).quota,
    has: (plan: string) => typeof plan === 'string' && entries.has(norm(plan)),
    resolver(planOf: (req: RequestView) => string | undefined | null): PolicyResolver {
      checkFn(planOf)
      return (req) => lookup(planOf, req).policy
    },
    quotaResolver(planOf: (req: RequestView) => string | undefined | null) {
      checkFn(planOf)
      return (req: RequestView) => lookup(planOf, req).quota
    },
  })
}
