// Worker process of the conformance suite's concurrency test: builds a store from a module, fires checks on command.
import { pathToFileURL } from 'node:url'
import { Algorithm, compilePolicy, type Policy, type Store } from '../../src/index.js'
import { type KernelJob, kernelJobRule } from './kernel-jobs.js'

interface Opened {
  store: Store
  close(): Promise<void>
}

const [module, ...args] = process.argv.slice(2)
const { createStore } = (await import(pathToFileURL(module as string).href)) as { createStore(...a: string[]): Promise<Opened> }
const { store, close } = await createStore(...args)

// Connect and load every algorithm's script before the barrier, so that the run measures checks only.
for (const algorithm of Object.values(Algorithm)) {
  const rule = compilePolicy({ name: `warm-${process.pid}`, limit: 1, window: 1, algorithm })
  await store.peek(rule.ns, 'warm', rule, Date.now())
}
process.send?.({ type: 'ready' })

process.on('message', async (m: { type: 'run'; policy?: Policy; kernel?: KernelJob; at: number; now: number; n: number } | { type: 'exit' }) => {
  if (m.type === 'exit') {
    await close()
    process.exit(0)
  }
  const rule = m.kernel !== undefined ? kernelJobRule(m.kernel) : compilePolicy(m.policy as Policy)
  await new Promise((r) => setTimeout(r, Math.max(0, m.at - Date.now())))
  const t0 = Date.now()
  const results = await Promise.allSettled(Array.from({ length: m.n }, () => store.consume(rule.ns, 'hot', rule, m.now, 1)))
  const t1 = Date.now()
  const failed = results.filter((r) => r.status === 'rejected')
  process.send?.({
    type: 'done',
    admitted: results.filter((r) => r.status === 'fulfilled' && r.value.allowed).length,
    errors: failed.length,
    firstError: failed.length > 0 ? String((failed[0] as PromiseRejectedResult).reason) : undefined,
    t0,
    t1,
  })
})
