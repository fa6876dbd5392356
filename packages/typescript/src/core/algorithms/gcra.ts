// GCRA: one theoretical arrival time per key; admits what a token bucket of equal rate and burst admits.
// State [blocked_until, tat]. Times are compared with a slack of at most 1 µs (spec/README.md says why).
import { type AlgorithmImpl, costExceedsCapacity } from './kernel.js'

export const gcra: AlgorithmImpl = {
  name: 'gcra',
  code: 'gcra',
  windowed: false,
  size: () => 2,
  init(s, o, now) {
    s[o] = 0
    s[o + 1] = now
  },
  idleAt: (s, o) => Math.ceil(s[o + 1] as number),
  step(s, o, now, cost, rule, out) {
    const T = rule.emission
    const tau = rule.tau
    const S = rule.gcraSlack
    const tat = s[o + 1] as number
    // A clock that stepped back: never read more than a full bucket ahead of `now`.
    const at = tat - tau > now ? tat - tau : now
    const base = tat > at ? tat : at
    if (cost > rule.burst) return costExceedsCapacity(out, rule, left(base, at, tau, T, S), Math.ceil(base))
    const newTat = base + cost * T
    if (newTat - at - tau <= S) {
      s[o + 1] = newTat
      out.allowed = true
      out.reason = undefined
      out.retryAfterMs = 0
      out.remaining = left(newTat, at, tau, T, S)
      out.resetAtMs = Math.ceil(newTat)
    } else {
      out.allowed = false
      out.reason = 'limit'
      out.retryAfterMs = Math.ceil(newTat - tau - now - S)
      out.remaining = left(base, at, tau, T, S)
      out.resetAtMs = Math.ceil(base)
    }
    out.delayMs = 0
  },
}

/** Whole units left when the theoretical arrival time is `t`. */
function left(t: number, now: number, tau: number, T: number, S: number): number {
  return Math.max(0, Math.floor((tau - (t - now) + S) / T))
}
