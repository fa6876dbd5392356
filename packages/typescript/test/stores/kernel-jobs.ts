// The quota and penalty rules of the concurrency tests, built alike by the suite and its worker processes.
import { penaltyRule } from '../../src/core/algorithms/penalty.js'
import { quotaRule } from '../../src/core/algorithms/quota.js'
import type { Rule } from '../../src/index.js'

/** The job a worker runs for the kernel concurrency tests (test/stores/worker.ts builds the rule). */
export interface KernelJob {
  kernel: 'quota' | 'penalty'
  name: string
  limit: number
  start: number
  end: number
}

/** The rule of a kernel job, as the worker and this file build it. */
export function kernelJobRule(job: KernelJob): Rule {
  return job.kernel === 'quota' ? quotaRule(job.name, job.limit, job.start, job.end, false) : penaltyRule(job.name, job.limit, 60_000, 1, 600_000)
}
