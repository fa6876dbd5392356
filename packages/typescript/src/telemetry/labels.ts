// What every exporter reads off a decision: a bounded set of labels (never the key: one series per client would not scale).
import type { Decision } from '../core/types.js'

/** What the deciding policy said. With `shadow`, a `blocked` request was admitted all the same. */
export type OutcomeLabel = 'allowed' | 'blocked' | 'exempt'

export function outcomeOf(d: Decision): OutcomeLabel {
  if (d.reason === 'exempt') return 'exempt'
  return d.allowed ? 'allowed' : 'blocked'
}

/** The decision's reason, `none` for a plain admission. */
export function reasonOf(d: Decision): string {
  return d.reason ?? 'none'
}

/** Upper bounds (milliseconds) of the latency histogram buckets: in-memory checks fall in the first few, remote stores further up. */
export const LATENCY_BUCKETS_MS: readonly number[] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500]
