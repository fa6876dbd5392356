// simulate(): replay a trace through policies with the real algorithm kernel and a simulated clock, and summarise.
import { newOutcome, runStep } from '../core/algorithms/kernel.js'
import { HaltConfigError } from '../core/errors.js'
import { compilePolicy, type Rule } from '../core/policy.js'
import type { AlgorithmName, Policy } from '../core/types.js'
import { niceStep } from './format.js'
import { describeRule, parsePolicySpec } from './policy-spec.js'
import { type ChartOptions, renderSvg } from './svg.js'
import { DEFAULT_KEY, SECONDS_BELOW, type Trace, TraceError, type TraceRequest } from './trace.js'

/** What one key saw under one policy. */
export interface KeySummary {
  key: string
  requests: number
  admitted: number
  rejected: number
  admittedUnits: number
  /** Most units admitted for this key within any interval of the policy's window length. */
  peakAdmitted: number
  /** Longest `retryAfter` (ms) a rejected request was told (cost-above-capacity rejections aside). */
  longestRetryAfterMs: number
  /** Leaky bucket in shaping mode: longest delay (ms) an admitted request was asked to wait. */
  longestDelayMs: number
}

/** What one policy did with the whole trace. */
export interface PolicySummary {
  /** The lane's name: the policy's `name` when given, else its description. */
  label: string
  /** Canonical parameters, e.g. `token_bucket 100/1m burst=120`. */
  description: string
  algorithm: AlgorithmName
  limit: number
  windowMs: number
  burst: number
  /** Leaky bucket in shaping mode (admitted requests are asked to wait `delay`). */
  shaping: boolean
  requests: number
  admitted: number
  rejected: number
  admittedUnits: number
  rejectedUnits: number
  rejectedBy: { limit: number; cooldown: number; cost_exceeds_capacity: number }
  /**
   * Most units admitted for one key within any interval of length `windowMs` (half-open,
   * `[t, t + window)`). The sliding window never exceeds `limit`; the others can.
   */
  peakAdmitted: number
  /** The key of that peak (on a tie, the key with more requests) and the start (epoch ms) of its interval. */
  peakKey: string
  peakAt: number
  /** Longest `retryAfter` (ms) a rejected request was told; 0 when none was rejected. */
  longestRetryAfterMs: number
  /** Leaky bucket in shaping mode: longest delay (ms) asked of an admitted request; else 0. */
  longestDelayMs: number
  /** Every key: most rejected first, then most requests, then by name. */
  keys: KeySummary[]
}

/** One policy's run: its summary and its decision for every request (in `result.requests` order). */
export interface PolicyRun {
  summary: PolicySummary
  rule: Rule
  /** 1 where the request was admitted, 0 where rejected. */
  allowed: Uint8Array
  /** Leaky bucket in shaping mode: the delay (ms) each admitted request was asked to wait. */
  delayMs: Float64Array | undefined
  /** Admission times (epoch ms) and units of `summary.peakKey`, for the chart's per-window line. */
  peakKeyAdmissions: { t: number[]; cost: number[] }
}

export interface TraceSummary {
  name: string
  requests: number
  keys: number
  /** Sum of the requests' costs (1 where the trace gives none). */
  units: number
  /** The span charted: epoch ms, `to` exclusive. */
  from: number
  to: number
}

export interface SimulationResult {
  trace: TraceSummary
  /** The requests in time order (ties keep their input order), every one with a key: what the policies saw. */
  requests: readonly TimedRequest[]
  /** One per policy, in the order given: plain numbers, ready for JSON. */
  summaries: PolicySummary[]
  runs: PolicyRun[]
  /** The chart (empty when `chart: false`). */
  svg: string
}

/** A request of a simulation: `key` filled in (`'*'` when the trace named none). */
export type TimedRequest = TraceRequest & { key: string }

export interface SimulateOptions {
  /** Chart options, or `false` to skip drawing (`svg` is then `''`). */
  chart?: ChartOptions | false
}

/**
 * Replay `trace` through each policy, each on its own (as if it were the only one deployed),
 * with per-key state and a simulated clock: the trace's timestamps. Decisions come from the
 * same algorithm kernel the stores run (`runStep`), so they are exactly what Halt would decide.
 * Rejected requests are not retried; the trace is replayed as recorded.
 *
 * Policies are `Policy` objects or spec strings (`'sliding_window:100/1m'`, see `parsePolicySpec`).
 *
 * @example
 * const r = simulate(['fixed_window:10/1m', 'sliding_window:10/1m'], parseTrace(csv))
 * r.summaries.map((s) => [s.label, s.admitted, s.peakAdmitted])
 * writeFileSync('chart.svg', r.svg)
 */
export function simulate(policies: ReadonlyArray<Policy | string>, trace: Trace | readonly TraceRequest[], options: SimulateOptions = {}): SimulationResult {
  if (!Array.isArray(policies) || policies.length === 0) {
    throw new HaltConfigError('HALT_INVALID_SIMULATION', 'simulate(policies, trace): give at least one policy, e.g. simulate(["token_bucket:100/1m"], trace).')
  }
  const t: Trace = Array.isArray(trace) ? { requests: trace as TraceRequest[] } : (trace as Trace)
  if (t === null || typeof t !== 'object' || !Array.isArray(t.requests)) {
    throw new HaltConfigError(
      'HALT_INVALID_SIMULATION',
      'simulate(policies, trace): trace must be an array of { t, key?, cost? } or { requests: [...] } (see parseTrace, generateTrace).',
    )
  }
  const rules = policies.map((p) => compilePolicy(typeof p === 'string' ? parsePolicySpec(p) : p))
  const requests = normalise(t.requests)
  const keyOf = new Map<string, number>()
  const keyNames: string[] = []
  const keyIds = new Uint32Array(requests.length)
  let units = 0
  for (let i = 0; i < requests.length; i++) {
    const r = requests[i] as TimedRequest
    let id = keyOf.get(r.key)
    if (id === undefined) {
      id = keyNames.length
      keyOf.set(r.key, id)
      keyNames.push(r.key)
    }
    keyIds[i] = id
    units += r.cost ?? 1
  }
  const { from, to } = span(requests, t)
  const labels = uniqueLabels(rules)
  const runs = rules.map((rule, i) => run(rule, labels[i] as string, requests, keyIds, keyNames))
  const result: SimulationResult = {
    trace: { name: t.name ?? 'trace', requests: requests.length, keys: keyNames.length, units, from, to },
    requests,
    summaries: runs.map((r) => r.summary),
    runs,
    svg: '',
  }
  if (options.chart !== false) result.svg = renderSvg(result, options.chart ?? {})
  return result
}

/**
 * The span to chart. Unless the trace gives it: a trace in relative time (every timestamp
 * from 0 to 1e11 ms) starts at 0; others start and end on round times (a tenth of the span
 * or less), so that the axis reads in whole steps.
 */
function span(requests: TimedRequest[], trace: Trace): { from: number; to: number } {
  const first = requests[0]?.t ?? 0
  const last = requests[requests.length - 1]?.t ?? 0
  const step = niceStep((last - first) / 10)
  let from = trace.from ?? (first >= 0 && last < SECONDS_BELOW ? 0 : Math.floor(first / step) * step)
  if (from > first) from = first
  let to = trace.to ?? Math.ceil((last + 1) / step) * step
  if (to <= last) to = last + 1
  if (to <= from) to = from + 1000
  return { from, to }
}

/** Validate, fill in the default key, and sort by time (stable). */
function normalise(input: readonly TraceRequest[]): TimedRequest[] {
  const out: TimedRequest[] = new Array(input.length)
  let sorted = true
  for (let i = 0; i < input.length; i++) {
    const r = input[i]
    const where = (problem: string) => new TraceError('trace', 0, `request ${i}: ${problem}`)
    if (r === null || typeof r !== 'object') throw where('is not an object like { t: 1700000000000, key: "ip:1", cost: 1 }')
    if (typeof r.t !== 'number' || !Number.isFinite(r.t)) throw where(`t must be a finite number of milliseconds, got ${String(r.t)}`)
    if (r.key !== undefined && typeof r.key !== 'string') throw where(`key must be a string, got ${String(r.key)}`)
    if (r.cost !== undefined && (typeof r.cost !== 'number' || !Number.isFinite(r.cost) || r.cost < 0)) {
      throw where(`cost must be a finite number >= 0, got ${String(r.cost)}`)
    }
    out[i] = r.cost === undefined ? { t: r.t, key: r.key ?? DEFAULT_KEY } : { t: r.t, key: r.key ?? DEFAULT_KEY, cost: r.cost }
    if (i > 0 && r.t < (out[i - 1] as TraceRequest).t) sorted = false
  }
  if (!sorted) out.sort((a, b) => a.t - b.t)
  return out
}

function uniqueLabels(rules: Rule[]): string[] {
  const seen = new Map<string, number>()
  return rules.map((rule) => {
    const named = rule.policy.name !== undefined && rule.policy.name !== 'default'
    const base = named ? `${rule.name}: ${describeRule(rule)}` : describeRule(rule)
    const n = (seen.get(base) ?? 0) + 1
    seen.set(base, n)
    return n === 1 ? base : `${base} #${n}`
  })
}

/** Per-key admissions still inside the trailing window, for the peak. */
interface Window {
  t: number[]
  cost: number[]
  head: number
  sum: number
}

function run(rule: Rule, label: string, requests: TimedRequest[], keyIds: Uint32Array, keyNames: string[]): PolicyRun {
  const n = requests.length
  const nKeys = keyNames.length
  const W = rule.windowMs
  const states: (Float64Array | undefined)[] = new Array(nKeys)
  const windows: (Window | undefined)[] = new Array(nKeys)
  const allowed = new Uint8Array(n)
  const delays = rule.shaping ? new Float64Array(n) : undefined
  const k = {
    requests: new Float64Array(nKeys),
    admitted: new Float64Array(nKeys),
    units: new Float64Array(nKeys),
    peak: new Float64Array(nKeys),
    peakAt: new Float64Array(nKeys),
    retry: new Float64Array(nKeys),
    delay: new Float64Array(nKeys),
  }
  const rejectedBy = { limit: 0, cooldown: 0, cost_exceeds_capacity: 0 }
  let rejectedUnits = 0
  const out = newOutcome()
  for (let i = 0; i < n; i++) {
    const r = requests[i] as TimedRequest
    const id = keyIds[i] as number
    const cost = r.cost ?? rule.cost
    let s = states[id]
    if (s === undefined) {
      s = states[id] = new Float64Array(rule.stateSize)
      rule.algorithm.init(s, 0, r.t, rule)
    }
    runStep(s, 0, r.t, cost, rule, out)
    k.requests[id] = (k.requests[id] as number) + 1
    if (out.allowed) {
      allowed[i] = 1
      k.admitted[id] = (k.admitted[id] as number) + 1
      k.units[id] = (k.units[id] as number) + cost
      if (delays !== undefined) {
        delays[i] = out.delayMs
        if (out.delayMs > (k.delay[id] as number)) k.delay[id] = out.delayMs
      }
      // Units admitted for this key in (t - W, t]: the interval [t - W + 1, t] of length W ms.
      let w = windows[id]
      if (w === undefined) w = windows[id] = { t: [], cost: [], head: 0, sum: 0 }
      w.t.push(r.t)
      w.cost.push(cost)
      w.sum += cost
      while ((w.t[w.head] as number) <= r.t - W) w.sum -= w.cost[w.head++] as number
      if (w.sum > (k.peak[id] as number) + 1e-9) {
        k.peak[id] = w.sum
        k.peakAt[id] = w.t[w.head] as number
      }
    } else {
      rejectedUnits += cost
      const reason = out.reason ?? 'limit'
      rejectedBy[reason]++
      if (reason !== 'cost_exceeds_capacity' && out.retryAfterMs > (k.retry[id] as number)) k.retry[id] = out.retryAfterMs
    }
  }

  const keys: KeySummary[] = []
  let peakId = -1
  for (let id = 0; id < nKeys; id++) {
    const requestsK = k.requests[id] as number
    const admittedK = k.admitted[id] as number
    keys.push({
      key: keyNames[id] as string,
      requests: requestsK,
      admitted: admittedK,
      rejected: requestsK - admittedK,
      admittedUnits: k.units[id] as number,
      peakAdmitted: k.peak[id] as number,
      longestRetryAfterMs: k.retry[id] as number,
      longestDelayMs: k.delay[id] as number,
    })
    // The key of the peak: the highest; on a tie, the one with more requests (the busier).
    const best = peakId < 0 ? -1 : (k.peak[peakId] as number)
    if ((k.peak[id] as number) > best || ((k.peak[id] as number) === best && requestsK > (k.requests[peakId] as number))) peakId = id
  }
  keys.sort((a, b) => b.rejected - a.rejected || b.requests - a.requests || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  const sum = (f: (x: KeySummary) => number) => keys.reduce((acc, x) => acc + f(x), 0)
  const max = (f: (x: KeySummary) => number) => keys.reduce((acc, x) => Math.max(acc, f(x)), 0)
  const admitted = sum((x) => x.admitted)
  const summary: PolicySummary = {
    label,
    description: describeRule(rule),
    algorithm: rule.algorithm.name as AlgorithmName,
    limit: rule.limit,
    windowMs: W,
    burst: rule.burst,
    shaping: rule.shaping && rule.algorithm.name === 'leaky_bucket',
    requests: n,
    admitted,
    rejected: n - admitted,
    admittedUnits: sum((x) => x.admittedUnits),
    rejectedUnits,
    rejectedBy,
    peakAdmitted: peakId < 0 ? 0 : (k.peak[peakId] as number),
    peakKey: peakId < 0 ? DEFAULT_KEY : (keyNames[peakId] as string),
    peakAt: peakId < 0 ? 0 : (k.peakAt[peakId] as number),
    longestRetryAfterMs: max((x) => x.longestRetryAfterMs),
    longestDelayMs: max((x) => x.longestDelayMs),
    keys,
  }
  const w = peakId < 0 ? undefined : windows[peakId]
  return { summary, rule, allowed, delayMs: delays, peakKeyAdmissions: { t: w?.t ?? [], cost: w?.cost ?? [] } }
}
