// Calendar quota kernel: a counter per period [start, end) that the caller computes (spec/saas/README.md §2).
// State [blocked_until, period_start, period_end, used]; blocked_until stays 0 (a quota has no cooldown).
import { Rule } from '../policy.js'
import { type AlgorithmImpl, costExceedsCapacity, EPS, unitsLeft } from './kernel.js'

/**
 * The quota kernel. It reads a quota rule's numbers through the slots every store
 * (and the Redis ARGV) already carries: `limit` = the quota's limit, `burst` = the
 * period's start (epoch ms), `windowMs` = the period's length (end - start),
 * `shaping` = refund (subtract `cost` instead of taking it).
 */
export const quotaKernel: AlgorithmImpl = {
  name: 'quota',
  code: 'q',
  windowed: true,
  size: () => 4,
  init(s, o, _now, rule) {
    s[o] = 0
    s[o + 1] = rule.burst
    s[o + 2] = rule.burst + rule.windowMs
    s[o + 3] = 0
  },
  idleAt: (s, o) => s[o + 2] as number,
  step(s, o, now, cost, rule, out) {
    const L = rule.limit
    const start = rule.burst
    // A later period, or a state whose period is over (it has expired), starts afresh; a state of a later
    // period (a caller whose clock is behind) is kept.
    if (start > (s[o + 1] as number) || now >= (s[o + 2] as number)) {
      s[o + 1] = start
      s[o + 2] = start + rule.windowMs
      s[o + 3] = 0
    }
    const end = s[o + 2] as number
    let used = s[o + 3] as number
    out.allowed = true
    out.reason = undefined
    out.retryAfterMs = 0
    if (rule.shaping) {
      // Refund: only within the caller's period; never below 0.
      if (s[o + 1] === start) {
        used = Math.max(0, used - cost)
        s[o + 3] = used
      }
    } else if (cost > L) {
      return costExceedsCapacity(out, rule, unitsLeft(L, used), end)
    } else if (used + cost <= L + EPS) {
      used += cost
      s[o + 3] = used
    } else {
      out.allowed = false
      out.reason = 'limit'
      out.retryAfterMs = end - now
    }
    out.remaining = unitsLeft(L, used)
    out.resetAtMs = end
    out.delayMs = 0
  },
}

/** The rule of one quota period: `refund` subtracts instead of consuming. State is shared by both (same namespace). */
export function quotaRule(name: string, limit: number, startMs: number, endMs: number, refund: boolean): Rule {
  const windowMs = endMs - startMs
  const policy = Object.freeze({ name, limit, window: windowMs / 1000 })
  return new Rule(policy, name, quotaKernel, limit, windowMs, startMs, 0, 1, refund, 0)
}
