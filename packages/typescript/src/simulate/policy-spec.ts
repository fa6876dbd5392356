// Policies written as one short string (`token_bucket:100/1m,burst=120`) for the CLI and docs, and their canonical description.
import { HaltConfigError } from '../core/errors.js'
import type { Rule } from '../core/policy.js'
import { Algorithm, type AlgorithmName, type Policy } from '../core/types.js'
import { fixed, formatWindow } from './format.js'

const ALGORITHMS = Object.values(Algorithm) as string[]
/** Short names accepted for each algorithm (the storage codes, and hyphens for underscores). */
const ALIASES: Record<string, AlgorithmName> = { tb: 'token_bucket', fw: 'fixed_window', sw: 'sliding_window', lb: 'leaky_bucket' }
const OPTIONS = ['burst', 'precision', 'mode', 'shaping', 'meter', 'block', 'cost', 'name']

/** The grammar, as help text and error messages show it. */
export const POLICY_SPEC_GRAMMAR = 'ALGORITHM:LIMIT/WINDOW[,OPTION=VALUE...]'
export const POLICY_SPEC_EXAMPLE = 'token_bucket:100/1m,burst=120'

function fail(spec: string, problem: string): never {
  throw new HaltConfigError(
    'HALT_INVALID_POLICY_SPEC',
    `policy "${spec}": ${problem}. Write ${POLICY_SPEC_GRAMMAR}, e.g. ${POLICY_SPEC_EXAMPLE} or sliding_window:10/s,precision=20`,
  )
}

function number(spec: string, field: string, text: string): number {
  const v = /^\d+(?:\.\d+)?$/.test(text.trim()) ? Number(text) : Number.NaN
  if (!Number.isFinite(v)) fail(spec, `${field} "${text}" is not a number`)
  return v
}

/**
 * Parse a policy written as `ALGORITHM:LIMIT/WINDOW[,OPTION=VALUE...]`:
 *
 * - `ALGORITHM`: `token_bucket`, `gcra`, `fixed_window`, `sliding_window`, `leaky_bucket`
 *   (or `tb`, `fw`, `sw`, `lb`; hyphens work as underscores)
 * - `LIMIT/WINDOW`: units per window, the window a duration: `100/1m`, `100/60s`, `5/s`, `1000/1h`
 * - options: `burst=N`, `precision=N` (sliding window), `mode=meter|shaping` (leaky bucket; `shaping`
 *   alone works too), `block=DURATION` (cooldown after a rejection), `cost=N`, `name=LABEL`
 *
 * A string starting with `{` is read as a JSON `Policy`. The result is validated by `compilePolicy`.
 *
 * @example
 * parsePolicySpec('token_bucket:100/1m,burst=120') // { algorithm: 'token_bucket', limit: 100, window: '1m', burst: 120 }
 */
export function parsePolicySpec(spec: string): Policy {
  const text = spec.trim()
  if (text.startsWith('{')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (e) {
      fail(spec, `not valid JSON (${(e as Error).message})`)
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) fail(spec, 'JSON policy must be an object')
    return parsed as Policy
  }
  const colon = text.indexOf(':')
  if (colon < 0) fail(spec, 'missing ":" between the algorithm and LIMIT/WINDOW')
  const algoText = text.slice(0, colon).trim().toLowerCase().replace(/-/g, '_')
  const algorithm = ALIASES[algoText] ?? (ALGORITHMS.includes(algoText) ? (algoText as AlgorithmName) : undefined)
  if (algorithm === undefined) fail(spec, `unknown algorithm "${algoText}"; use one of ${ALGORITHMS.join(', ')}`)
  const [rate = '', ...options] = text.slice(colon + 1).split(',')
  const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$/.exec(rate)
  if (!m) fail(spec, `"${rate}" is not LIMIT/WINDOW like 100/1m, 100/60s or 5/s`)
  const policy: Policy = { algorithm, limit: Number(m[1]), window: `${Number(m[2] ?? 1)}${m[3] as 'ms'}` }
  for (const option of options) {
    const eq = option.indexOf('=')
    const key = (eq < 0 ? option : option.slice(0, eq)).trim().toLowerCase()
    const value = eq < 0 ? '' : option.slice(eq + 1).trim()
    if (!OPTIONS.includes(key)) fail(spec, `unknown option "${key}"; use ${OPTIONS.filter((o) => o !== 'meter' && o !== 'shaping').join('=, ')}=`)
    if (key === 'shaping' || key === 'meter') {
      if (eq >= 0) fail(spec, `"${key}" takes no value (or write mode=${key})`)
      policy.leakyMode = key
      continue
    }
    if (eq < 0 || value === '')
      fail(spec, `option "${key}" needs a value, like ${key}=${key === 'mode' ? 'shaping' : key === 'block' ? '5m' : key === 'name' ? 'api' : '10'}`)
    if (key === 'burst') policy.burst = number(spec, 'burst', value)
    else if (key === 'precision') policy.precision = number(spec, 'precision', value)
    else if (key === 'cost') policy.cost = number(spec, 'cost', value)
    else if (key === 'name') policy.name = value
    else if (key === 'mode') {
      if (value !== 'meter' && value !== 'shaping') fail(spec, `mode must be meter or shaping, got "${value}"`)
      policy.leakyMode = value
    } else if (key === 'block') {
      const b = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(value)
      if (!b) fail(spec, `block "${value}" is not a duration like 30s or 5m`)
      policy.blockDuration = b[2] === undefined ? Number(b[1]) : `${Number(b[1])}${b[2] as 'ms'}`
    }
  }
  return policy
}

/**
 * The canonical one-line description of a compiled policy, in the spec grammar's words:
 * `token_bucket 100/1m burst=120`, `gcra 5/s`. Options at their defaults are left out.
 */
export function describeRule(rule: Rule): string {
  const window = rule.windowMs === 1000 ? 's' : formatWindow(rule.windowMs)
  const parts = [`${rule.algorithm.name} ${fixed(rule.limit, 6)}/${window}`]
  if (!rule.algorithm.windowed && rule.burst !== rule.limit) parts.push(`burst=${fixed(rule.burst, 6)}`)
  if (rule.algorithm.name === 'sliding_window' && rule.precision !== 10) parts.push(`precision=${rule.precision}`)
  if (rule.algorithm.name === 'leaky_bucket' && rule.shaping) parts.push('shaping')
  if (rule.blockMs > 0) parts.push(`block=${formatWindow(rule.blockMs)}`)
  if (rule.cost !== 1) parts.push(`cost=${fixed(rule.cost, 6)}`)
  return parts.join(' ')
}
