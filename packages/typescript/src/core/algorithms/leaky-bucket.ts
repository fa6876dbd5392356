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
  idleAt: (s, o, rule) => (s[o + 2] as number) + drained(s[o + 1] as number, rule.rate),
  step(s, o, now, cost, rule, out) {
    const B = rule.burst
    const r = rule.rate
    let level = s[o + 1] as number
    let last = s[o + 2] as number
    if (now > last) {
      level = Math.max(0, level - (now - last) * r)
      last = now
      s[o + 1] = level
      s[o + 2] = now
    }
    // A clock that stepped back: draining resumes only at last_ms.
    const wait = last > now ? last - now : 0
    if (cost > B) return costExceedsCapacity(out, rule, unitsLeft(B, level), last + drained(level, r))
    if (level + cost <= B + EPS) {
      out.delayMs = rule.shaping ? wait + drained(level, r) : 0
      level += cost
      s[o + 1] = level
      out.allowed = true
      out.reason = undefined
      out.retryAfterMs = 0
    } else {
      out.allowed = false
      out.reason = 'limit'
      out.retryAfterMs = wait + Math.ceil((level + cost - B - EPS) / r)
      out.delayMs = 0
    }
    out.remaining = unitsLeft(B, level)
    out.resetAtMs = last + drained(level, r)
  },
}

/** Milliseconds until `level` units have drained. */
function drained(level: number, r: number): number {
  return level <= EPS ? 0 : Math.ceil((level - EPS) / r)
}
