// Token bucket: capacity `burst`, continuous refill of `limit / window`. State [blocked_until, tokens, last_ms].
import { type AlgorithmImpl, costExceedsCapacity, EPS } from './kernel.js'

export const tokenBucket: AlgorithmImpl = {
  name: 'token_bucket',
  code: 'tb',
  windowed: false,
  size: () => 3,
  init(s, o, now, rule) {
    s[o] = 0
    s[o + 1] = rule.burst
    s[o + 2] = now
  },
  idleAt: (s, o, rule) => fullAt(s[o + 1] as number, rule.burst, rule.rate, s[o + 2] as number),
  step(s, o, now, cost, rule, out) {
    const B = rule.burst
    const r = rule.rate
    let tokens = s[o + 1] as number
    let last = s[o + 2] as number
    // min() also when no time passed: a state saved under a larger burst (the policy was changed) holds at most B.
    tokens = Math.min(B, now > last ? tokens + (now - last) * r : tokens)
    s[o + 1] = tokens
    if (now > last) {
      last = now
      s[o + 2] = now
    }
    // A clock that stepped back: refill resumes only at last_ms.
    const wait = last > now ? last - now : 0
    if (cost > B) return costExceedsCapacity(out, rule, Math.floor(tokens + EPS), fullAt(tokens, B, r, last))
    if (tokens + EPS >= cost) {
      tokens = Math.max(0, tokens - cost)
      s[o + 1] = tokens
      out.allowed = true
      out.reason = undefined
      out.retryAfterMs = 0
    } else {
      out.allowed = false
      out.reason = 'limit'
      out.retryAfterMs = wait + Math.ceil((cost - tokens - EPS) / r)
    }
    out.remaining = Math.floor(tokens + EPS)
    out.resetAtMs = fullAt(tokens, B, r, last)
    out.delayMs = 0
  },
}

/** When the bucket is full again. */
function fullAt(tokens: number, B: number, r: number, last: number): number {
  return tokens + EPS >= B ? last : last + Math.ceil((B - tokens - EPS) / r)
}
