// Leaky bucket: a queue of capacity `burst` draining at `limit / window`; meter mode rejects when
// full, shaping mode also tells each request how long to wait. State [blocked_until, level, last_ms].
import { type AlgorithmImpl, costExceedsCapacity, EPS, unitsLeft } from './kernel.js'

export const leakyBucket: AlgorithmImpl = {
  name: 'leaky_bucket',
  code: 'lb',
  windowed: false,
  size: () => 3,
  init(s, o, now) {
    s[o] = 0
    s[o + 1] = 0
    s[o + 2] = now
  },
  step(s, o, now, cost, rule, out) {
    const B = rule.burst
    const r = rule.rate
    let level = s[o + 1] as number
    const last = s[o + 2] as number
    if (now > last) {
      level = Math.max(0, level - (now - last) * r)
      s[o + 1] = level
      s[o + 2] = now
    }
    if (cost > B) return costExceedsCapacity(out, rule, unitsLeft(B, level), now + Math.ceil(level / r))
    if (level + cost <= B + EPS) {
      out.delayMs = rule.shaping ? Math.ceil(level / r) : 0
      level += cost
      s[o + 1] = level
      out.allowed = true
      out.reason = undefined
      out.retryAfterMs = 0
    } else {
      out.allowed = false
      out.reason = 'limit'
      out.retryAfterMs = Math.ceil((level + cost - B) / r)
      out.delayMs = 0
    }
    out.remaining = unitsLeft(B, level)
    out.resetAtMs = now + Math.ceil(level / r)
  },
}
