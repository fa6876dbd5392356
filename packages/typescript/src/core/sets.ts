// Limit sets: several policies of one identity decided as one (all or nothing), shadow policies beside them. Pure.
import { evaluate } from './algorithms/kernel.js'
import { HaltConfigError } from './errors.js'
import { compilePolicy, type Rule } from './policy.js'
import type { Outcome, Policy } from './types.js'

/** What `evaluateSet` decides. */
export interface SetResult {
  /** Whether the enforced policies admit the request (true when every policy is shadow). */
  allowed: boolean
  /** Each policy's outcome, in order. */
  outcomes: Outcome[]
  /** Each policy's state to store, or null: the state stays as it was (nothing to write). */
  states: (number[] | null)[]
}

/**
 * One request against several policies of one identity (spec/README.md, "Limit sets"). Every policy takes its
 * step on its own state. The enforced policies admit only if each of them admits; then each consumes. If one
 * rejects, none consumes: a policy that rejected keeps its rejection step (a cooldown it starts), a policy that
 * would have admitted keeps its state as it was and reports it (the outcome of a cost-0 step).
 *
 * Shadow policies follow the same rule in the world where they were enforced too: they consume only when the
 * enforced policies and every shadow policy admit. So a shadow policy's counters show what it would have
 * admitted, and it never changes what the enforced ones decide.
 *
 * The input states are not modified. A single enforced policy decides exactly as `evaluate()`.
 */
export function evaluateSet(
  states: readonly (ArrayLike<number> | null | undefined)[],
  now: number,
  costs: readonly number[],
  rules: readonly Rule[],
): SetResult {
  const n = rules.length
  const outcomes: Outcome[] = new Array(n)
  const next: (number[] | null)[] = new Array(n)
  let enforced = true
  let shadow = true
  for (let i = 0; i < n; i++) {
    const rule = rules[i] as Rule
    const r = evaluate(states[i], now, costs[i] as number, rule)
    outcomes[i] = r.outcome
    next[i] = r.state
    if (!r.outcome.allowed) {
      if (rule.shadow) shadow = false
      else enforced = false
    }
  }
  const all = enforced && shadow
  for (let i = 0; i < n; i++) {
    const rule = rules[i] as Rule
    if ((outcomes[i] as Outcome).allowed && !(rule.shadow ? all : enforced)) {
      outcomes[i] = evaluate(states[i], now, 0, rule).outcome
      next[i] = null
    }
  }
  return { allowed: enforced, outcomes, states: next }
}

/**
 * Compile the policies of a limit set. They must have distinct names (each keeps its own counters) and one
 * key strategy (one identity is checked against all of them).
 */
export function compileSet(policies: readonly Policy[], forceShadow: boolean): Rule[] {
  if (policies.length === 0) {
    throw new HaltConfigError(
      'HALT_INVALID_POLICY_SET',
      'RateLimiter: policy is an empty array. Fix: give one policy, or several like [{ name: "per_second", limit: 10, window: 1 }, { name: "per_day", limit: 1000, window: "1d" }].',
    )
  }
  const rules = policies.map((p) => compilePolicy(forceShadow && p !== null && typeof p === 'object' ? { ...p, mode: 'shadow' } : p))
  const names = new Set<string>()
  for (const r of rules) {
    if (names.has(r.name)) {
      throw new HaltConfigError(
        'HALT_INVALID_POLICY_SET',
        `RateLimiter: two policies of the set are named '${r.name}'; they would share counters. Fix: give each policy its own name.`,
      )
    }
    names.add(r.name)
  }
  const strategies = new Set(rules.map((r) => r.policy.keyStrategy ?? ''))
  strategies.delete('')
  if (strategies.size > 1) {
    throw new HaltConfigError(
      'HALT_INVALID_POLICY_SET',
      `RateLimiter: the policies of a set use different key strategies (${[...strategies].join(', ')}); one request has one identity. Fix: use one limiter per key strategy.`,
    )
  }
  return rules
}
