// Fixed window: a counter per aligned window; up to 2x limit can pass around a boundary (documented).
// State [blocked_until, window_start, count].
import { type AlgorithmImpl, costExceedsCapacity, EPS, unitsLeft } from './kernel.js'

export const fixedWindow: AlgorithmImpl = {
  name: 'fixed_window',
  code: 'fw',
  windowed: true,
  size: () => 3,
  init(s, o, now, rule) {
    s[o] = 0
    s[o + 1] = Math.floor(now / rule.windowMs) * rule.windowMs
    s[o + 2] = 0
  },
  idleAt: (s, o, rule) => (s[o + 1] as number) + rule.windowMs,
  step(s, o, now, cost, rule, out) {
    const L = rule.limit
    const W = rule.windowMs
    const ws = Math.floor(now / W) * W
    let start = s[o + 1] as number
    let count = s[o + 2] as number
    if (ws > start) {
      start = ws
      count = 0
      s[o + 1] = start
      s[o + 2] = 0
    }
    if (cost > L) return costExceedsCapacity(out, rule, unitsLeft(L, count), start + W)
    if (count + cost <= L + EPS) {
      count += cost
      s[o + 2] = count
      out.allowed = true
      out.reason = undefined
      out.retryAfterMs = 0
    } else {
      out.allowed = false
      out.reason = 'limit'
      out.retryAfterMs = start + W - now
    }
    out.remaining = unitsLeft(L, count)
    out.resetAtMs = start + W
    out.delayMs = 0
  },
}
