// Sliding window: `precision` sub-buckets per window in a ring of precision + 1 slots. Every admission
// checks the last precision + 1 buckets, so no interval of length `window` ever holds more than
// `limit` (spec/README.md explains why). State [blocked_until, cur, n_0 .. n_P].
import { type AlgorithmImpl, costExceedsCapacity, EPS, unitsLeft } from './kernel.js'

export const slidingWindow: AlgorithmImpl = {
  name: 'sliding_window',
  code: 'sw',
  windowed: true,
  size: (rule) => rule.precision + 3,
  init(s, o, now, rule) {
    s[o] = 0
    s[o + 1] = Math.floor(now / rule.bucketMs)
    for (let i = 0; i <= rule.precision; i++) s[o + 2 + i] = 0
  },
  // Empty, the state still pins `cur`: it equals a fresh one once time reaches that bucket.
  idleAt: (s, o, rule) => resetAt(s, o + 2, s[o + 1] as number, rule.precision, rule.bucketMs, (s[o + 1] as number) * rule.bucketMs),
  step(s, o, now, cost, rule, out) {
    const P = rule.precision
    const n = P + 1
    const b = rule.bucketMs
    const L = rule.limit
    const ring = o + 2
    const cur = s[o + 1] as number
    let k = Math.floor(now / b)
    if (k > cur) {
      const last = Math.min(k, cur + n)
      for (let i = cur + 1; i <= last; i++) s[ring + mod(i, n)] = 0
      s[o + 1] = k
    } else {
      k = cur
    }
    let used = 0
    for (let i = 0; i < n; i++) used += s[ring + i] as number
    if (cost > L) return costExceedsCapacity(out, rule, unitsLeft(L, used), resetAt(s, ring, k, P, b, now))
    if (used + cost <= L + EPS) {
      s[ring + mod(k, n)] = (s[ring + mod(k, n)] as number) + cost
      out.allowed = true
      out.reason = undefined
      out.retryAfterMs = 0
      out.remaining = Math.max(0, Math.floor(L - used - cost + EPS))
    } else {
      out.allowed = false
      out.reason = 'limit'
      out.remaining = unitsLeft(L, used)
      let left = used
      let i = k - P
      for (; i <= k; i++) {
        left -= s[ring + mod(i, n)] as number
        if (left + cost <= L + EPS) break
      }
      out.retryAfterMs = Math.ceil((i + P + 1) * b - now)
    }
    out.resetAtMs = resetAt(s, ring, k, P, b, now)
    out.delayMs = 0
  },
}

/** When every counted bucket has left the window: `now` if all are empty. */
function resetAt(s: { [i: number]: number }, ring: number, k: number, P: number, b: number, now: number): number {
  const n = P + 1
  for (let i = k; i >= k - P; i--) {
    if ((s[ring + mod(i, n)] as number) > 0) return Math.ceil((i + P + 1) * b)
  }
  return now
}

/** Mathematical modulo (bucket indices can be negative near t = 0). */
function mod(i: number, n: number): number {
  const m = i % n
  return m < 0 ? m + n : m
}
