// Loads spec/saas/vectors (quota and penalty kernels, calendar periods) and builds the kernel rules of a step.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { penaltyRule } from '../../src/core/algorithms/penalty.js'
import { quotaRule } from '../../src/core/algorithms/quota.js'
import type { QuotaPeriodName, Rule } from '../../src/index.js'
import { SPEC_DIR, type VectorExpect } from './vectors.js'

export interface KernelStep {
  t: number
  cost?: number
  peek?: boolean
  /** Quota steps: the period's bounds, and whether the step is a refund. */
  start?: number
  end?: number
  refund?: boolean
  expect: Omit<VectorExpect, 'state'> & { state: number[] | null }
}
export interface KernelCase {
  name: string
  description: string
  params: { limit?: number; threshold?: number; duration_ms?: number; decay_rate?: number; max_duration_ms?: number }
  steps: KernelStep[]
}
export interface KernelFile {
  kernel: 'quota' | 'penalty'
  cases: KernelCase[]
}
export interface CalendarCase {
  description: string
  period: QuotaPeriodName
  time_zone: string
  t: number
  start: number
  end: number
}

const dir = join(SPEC_DIR, 'saas', 'vectors')
const load = <T>(name: string): T => JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as T

export const loadKernelVectors = (): KernelFile[] => [load<KernelFile>('quota'), load<KernelFile>('penalty')]
export const loadCalendarVectors = (): CalendarCase[] => load<{ cases: CalendarCase[] }>('calendar').cases

/** The rule a step runs under, in namespace `<name>:q` or `<name>:pen`. */
export function kernelRule(kernel: 'quota' | 'penalty', c: KernelCase, step: KernelStep, name = 'vector'): Rule {
  const p = c.params
  if (kernel === 'quota') return quotaRule(name, p.limit as number, step.start as number, step.end as number, step.refund === true)
  return penaltyRule(name, p.threshold as number, p.duration_ms as number, p.decay_rate as number, p.max_duration_ms as number)
}
