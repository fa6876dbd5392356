// Policy validation and compilation: a Policy (user data) becomes a Rule (the numbers algorithms read).
import { algorithms } from './algorithms/index.js'
import type { AlgorithmImpl } from './algorithms/kernel.js'
import { HaltConfigError } from './errors.js'
import { Algorithm, type AlgorithmName, type Duration, KeyStrategy, type Policy } from './types.js'

const ALGORITHM_NAMES = Object.values(Algorithm) as string[]
const KEY_STRATEGIES = Object.values(KeyStrategy) as string[]
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const MAX_PRECISION = 1000

/** A validated, compiled policy. Immutable; algorithms read only these numbers. */
export class Rule {
  readonly windowMs: number
  readonly burst: number
  /** Units per millisecond (bucket algorithms). */
  readonly rate: number
  /** GCRA: ms per unit, and the tolerance `burst * T`. */
  readonly emission: number
  readonly tau: number
  /** GCRA: slack for comparing absolute times, `min(1 µs, T / 1000)`. */
  readonly gcraSlack: number
  readonly precision: number
  readonly bucketMs: number
  readonly shaping: boolean
  readonly blockMs: number
  /** Storage namespace: policy name and algorithm code, e.g. `api:tb`. */
  readonly ns: string
  readonly stateSize: number
  /** Most units one request may take: `burst` for bucket algorithms, `limit` for window ones. */
  readonly capacity: number
  /** `mode: 'shadow'`: evaluated and reported, never rejects. */
  readonly shadow: boolean

  constructor(
    readonly policy: Readonly<Policy>,
    readonly name: string,
    readonly algorithm: AlgorithmImpl,
    readonly limit: number,
    windowMs: number,
    burst: number,
    readonly cost: number,
    precision: number,
    shaping: boolean,
    blockMs: number,
  ) {
    this.windowMs = windowMs
    this.burst = burst
    this.rate = limit / windowMs
    this.emission = windowMs / limit
    this.tau = burst * this.emission
    this.gcraSlack = Math.min(0.001, this.emission * 0.001)
    this.precision = precision
    this.bucketMs = windowMs / precision
    this.shaping = shaping
    this.blockMs = blockMs
    this.ns = `${name}:${algorithm.code}`
    this.stateSize = algorithm.size(this)
    this.capacity = algorithm.windowed ? limit : burst
    this.shadow = policy.mode === 'shadow'
  }

  /** The same policy under another algorithm (per-request override). */
  withAlgorithm(name: AlgorithmName): Rule {
    return compilePolicy({ ...this.policy, algorithm: name })
  }
}

/** Parse a duration (seconds, or `'500ms' | '30s' | '1m' | '1h' | '1d'`) into milliseconds. */
export function durationMs(value: Duration, field: string, policyName: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value * 1000
  } else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value)
    if (m) return Number(m[1]) * (UNIT_MS[m[2] as string] as number)
  }
  throw new HaltConfigError(
    'HALT_INVALID_DURATION',
    `policy '${policyName}': ${field} must be a number of seconds or a string like '30s', '1m', '1h', got ${show(value)}. Fix: write e.g. ${field}: 60 or ${field}: '1m'.`,
  )
}

function show(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : String(v)
}

function positive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0
}

/**
 * Validate a policy and compile it. Every mistake raises a `HaltConfigError`
 * that says what is wrong and how to fix it.
 */
export function compilePolicy(policy: Policy): Rule {
  if (policy === null || typeof policy !== 'object') {
    throw new HaltConfigError('HALT_INVALID_POLICY', `a policy must be an object like { limit: 100, window: 60 }, got ${show(policy)}.`)
  }
  const name = policy.name ?? 'default'
  if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
    throw new HaltConfigError(
      'HALT_INVALID_POLICY_NAME',
      `policy name must be a non-empty string of at most 200 characters, got ${show(name)}. Fix: name: 'api'.`,
    )
  }
  if (!positive(policy.limit)) {
    throw new HaltConfigError(
      'HALT_INVALID_LIMIT',
      `policy '${name}': limit must be a positive finite number of requests per window, got ${show(policy.limit)}. Fix: set limit to e.g. 100.`,
    )
  }
  if (policy.window === undefined) {
    throw new HaltConfigError('HALT_INVALID_WINDOW', `policy '${name}': window is required. Fix: window: 60 (seconds) or window: '1m'.`)
  }
  const windowMs = durationMs(policy.window, 'window', name)
  if (!(windowMs >= 1) || !Number.isFinite(windowMs)) {
    throw new HaltConfigError(
      'HALT_INVALID_WINDOW',
      `policy '${name}': window must be at least 1 ms, got ${show(policy.window)}. Fix: window: 60 (seconds) or window: '1m'.`,
    )
  }
  const algorithmName = policy.algorithm ?? Algorithm.TOKEN_BUCKET
  if (!ALGORITHM_NAMES.includes(algorithmName)) {
    throw new HaltConfigError(
      'HALT_UNKNOWN_ALGORITHM',
      `policy '${name}': unknown algorithm ${show(algorithmName)}. Fix: use one of ${ALGORITHM_NAMES.join(', ')} (the Algorithm constants).`,
    )
  }
  const burst = policy.burst ?? policy.limit
  if (!positive(burst)) {
    throw new HaltConfigError(
      'HALT_INVALID_BURST',
      `policy '${name}': burst must be a positive finite number, got ${show(policy.burst)}. Fix: omit it (defaults to limit) or set it >= limit.`,
    )
  }
  const cost = policy.cost ?? 1
  if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) {
    throw new HaltConfigError('HALT_INVALID_COST', `policy '${name}': cost must be a finite number >= 0, got ${show(policy.cost)}. Fix: cost: 1.`)
  }
  const impl = algorithms[algorithmName as AlgorithmName]
  const windowed = impl.windowed
  const capacity = windowed ? policy.limit : burst
  if (cost > capacity) {
    throw new HaltConfigError(
      'HALT_COST_EXCEEDS_CAPACITY',
      `policy '${name}': the default cost ${cost} is above the capacity ${capacity} (${windowed ? 'limit' : 'burst'}), so no request could ever pass. Fix: raise ${windowed ? 'limit' : 'burst'} to at least ${cost} or lower cost.`,
    )
  }
  const precision = policy.precision ?? 10
  if (!Number.isInteger(precision) || precision < 1 || precision > MAX_PRECISION) {
    throw new HaltConfigError(
      'HALT_INVALID_PRECISION',
      `policy '${name}': precision must be a whole number from 1 to ${MAX_PRECISION} (sub-buckets per window), got ${show(policy.precision)}. Fix: precision: 10.`,
    )
  }
  const mode = policy.leakyMode ?? 'meter'
  if (mode !== 'meter' && mode !== 'shaping') {
    throw new HaltConfigError('HALT_INVALID_LEAKY_MODE', `policy '${name}': leakyMode must be 'meter' or 'shaping', got ${show(mode)}.`)
  }
  const blockMs = policy.blockDuration === undefined ? 0 : durationMs(policy.blockDuration, 'blockDuration', name)
  if (policy.keyStrategy !== undefined && !KEY_STRATEGIES.includes(policy.keyStrategy)) {
    throw new HaltConfigError(
      'HALT_UNKNOWN_KEY_STRATEGY',
      `policy '${name}': unknown keyStrategy ${show(policy.keyStrategy)}. Fix: use one of ${KEY_STRATEGIES.join(', ')} (the KeyStrategy constants).`,
    )
  }
  if (policy.mode !== undefined && policy.mode !== 'enforce' && policy.mode !== 'shadow') {
    throw new HaltConfigError(
      'HALT_INVALID_MODE',
      `policy '${name}': mode must be 'enforce' or 'shadow', got ${show(policy.mode)}. Fix: omit it (enforce) or mode: 'shadow' to only report.`,
    )
  }
  return new Rule(Object.freeze({ ...policy }), name, impl, policy.limit, windowMs, burst, cost, precision, mode === 'shaping', blockMs)
}
