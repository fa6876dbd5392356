// Penalty kernel: an abuse score that decays continuously, and progressive penalties (spec/saas/README.md §3).
// State [blocked_until, score, last_ms, penalty_until, offences]; blocked_until stays 0.
import { Rule } from '../policy.js'
import { type AlgorithmImpl, EPS } from './kernel.js'

const HOUR_MS = 3_600_000
/** Doubling stops growing here (2^52 times the base is beyond any cap). */
const MAX_DOUBLINGS = 52

/**
 * The penalty kernel. A step records a violation of severity `cost` (0: only decay).
 * Rule slots: `limit` = threshold, `windowMs` = the first penalty's duration (ms),
 * `burst` = decay rate (points per hour), `precision` = the longest penalty (ms).
 *
 * The outcome is always `allowed` (recording never fails); it carries the penalty:
 * `remaining` = offences so far, `retryAfterMs` = ms left of the active penalty (0: none),
 * `delayMs` = the abuse score, `resetAtMs` = when the identity is forgiven (score 0 and
 * no penalty: the state is then equivalent to a fresh one, and the key expires).
 */
export const penaltyKernel: AlgorithmImpl = {
  name: 'penalty',
  code: 'pen',
  windowed: true,
  size: () => 5,
  init(s, o, now) {
    s[o] = 0
    s[o + 1] = 0
    s[o + 2] = now
    s[o + 3] = 0
    s[o + 4] = 0
  },
  idleAt: (s, o, rule) => forgivenAt(s[o + 1] as number, s[o + 2] as number, s[o + 3] as number, rule.burst),
  step(s, o, now, cost, rule, out) {
    const T = rule.limit
    const R = rule.burst
    let score = s[o + 1] as number
    const last = s[o + 2] as number
    let until = s[o + 3] as number
    let n = s[o + 4] as number
    if (now > last) {
      score = score - ((now - last) * R) / HOUR_MS
      if (score < EPS) score = 0
      s[o + 1] = score
      s[o + 2] = now
    }
    if (score === 0 && now >= until) {
      // Forgiven: score decayed away and no penalty running; offences start again from 0.
      until = 0
      n = 0
      s[o + 3] = 0
      s[o + 4] = 0
    }
    if (cost > 0) {
      score = score + cost
      s[o + 1] = score
      if (now >= until && score + EPS >= T) {
        n = n + 1
        const duration = Math.min(rule.precision, rule.windowMs * 2 ** Math.min(n - 1, MAX_DOUBLINGS))
        until = now + duration
        s[o + 3] = until
        s[o + 4] = n
      }
    }
    out.allowed = true
    out.reason = undefined
    out.remaining = n
    out.retryAfterMs = until > now ? until - now : 0
    out.delayMs = score
    out.resetAtMs = forgivenAt(score, s[o + 2] as number, until, R)
  },
}

/** When the score has decayed to 0 and the penalty is over: `max(last + ceil(score * 3600000 / R), penalty_until)`. */
function forgivenAt(score: number, last: number, until: number, R: number): number {
  const zero = score > 0 ? last + Math.ceil((score * HOUR_MS) / R) : last
  return zero > until ? zero : until
}

/** The rule of a penalty configuration (ms and points per hour). */
export function penaltyRule(name: string, threshold: number, durationMs: number, decayPerHour: number, maxDurationMs: number): Rule {
  const policy = Object.freeze({ name, limit: threshold, window: durationMs / 1000 })
  return new Rule(policy, name, penaltyKernel, threshold, durationMs, decayPerHour, 0, maxDurationMs, false, 0)
}
