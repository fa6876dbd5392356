// Loads the language-neutral conformance vectors from spec/vectors.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AlgorithmName, Outcome, Policy } from '../../src/index.js'

export const SPEC_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../../spec')

export interface VectorExpect {
  allowed: boolean
  remaining: number
  reset_at_ms: number
  retry_after_ms: number
  reason: string | null
  delay_ms: number
  state?: number[]
}
export interface VectorStep {
  t: number
  cost?: number
  peek?: boolean
  expect: VectorExpect
}
export interface VectorCase {
  name: string
  description?: string
  policy: { limit: number; window: number; burst?: number; block_duration?: number; precision?: number; shaping?: boolean }
  steps: VectorStep[]
}
export interface VectorFile {
  algorithm: AlgorithmName
  cases: VectorCase[]
}

export function loadVectors(): VectorFile[] {
  const dir = join(SPEC_DIR, 'vectors')
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as VectorFile)
}

/** The vector's policy as a Halt policy. */
export function toPolicy(algorithm: AlgorithmName, c: VectorCase): Policy {
  const p = c.policy
  return {
    name: 'vector',
    algorithm,
    limit: p.limit,
    window: p.window,
    ...(p.burst !== undefined && { burst: p.burst }),
    ...(p.block_duration !== undefined && { blockDuration: p.block_duration }),
    ...(p.precision !== undefined && { precision: p.precision }),
    ...(p.shaping !== undefined && { leakyMode: p.shaping ? 'shaping' : 'meter' }),
    cost: 0,
  }
}

/** An outcome in the vectors' terms (snake_case, `reason: null` when admitted), without the state. */
export function outcomeFields(o: Outcome): Omit<VectorExpect, 'state'> {
  return {
    allowed: o.allowed,
    remaining: o.remaining,
    reset_at_ms: o.resetAtMs,
    retry_after_ms: o.retryAfterMs,
    reason: o.reason ?? null,
    delay_ms: o.delayMs,
  }
}

/** A limit-set case of spec/vectors/sets (spec/README.md §4). */
export interface SetVectorCase {
  name: string
  description: string
  policies: (VectorCase['policy'] & { name: string; algorithm: AlgorithmName; shadow?: boolean })[]
  steps: { t: number; cost: number; expect: { allowed: boolean; policies: (VectorExpect & { state: number[] | null })[] } }[]
}

export function loadSetVectors(): SetVectorCase[] {
  return (JSON.parse(readFileSync(join(SPEC_DIR, 'vectors', 'sets', 'limit_sets.json'), 'utf8')) as { cases: SetVectorCase[] }).cases
}

/** A set vector's policies as Halt policies, their names prefixed (so that test runs keep apart). */
export function toSetPolicies(c: SetVectorCase, prefix = ''): Policy[] {
  return c.policies.map((p) => ({
    ...toPolicy(p.algorithm, { name: p.name, policy: p, steps: [] }),
    name: `${prefix}${p.name}`,
    ...(p.shadow === true && { mode: 'shadow' as const }),
  }))
}
