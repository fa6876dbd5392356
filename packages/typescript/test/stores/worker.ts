// Worker process of the conformance suite's concurrency test: builds a store from a module, fires checks on command.
import { pathToFileURL } from 'node:url'
import { Algorithm, compilePolicy, type Policy, type Rule, type Store } from '../../src/index.js'
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
if (store.consumeSet !== undefined) {
  const rules = ['a', 'b'].map((n) => compilePolicy({ name: `warm-${process.pid}-${n}`, limit: 1, window: 1 }))
  await store.consumeSet('warm', rules, Date.now(), [0, 0])
}
process.send?.({ type: 'ready' })

process.on(
  'message',
  async (m: { type: 'run'; policy?: Policy | Policy[]; kernel?: KernelJob; at: number; now: number; n: number; keys?: number } | { type: 'exit' }) => {
    if (m.type === 'exit') {
      await close()
      process.exit(0)
    }
    // One policy (or kernel): consume; several (a limit set): consumeSet, admitted when every policy admits.
    const rules = m.kernel !== undefined ? [kernelJobRule(m.kernel)] : (Array.isArray(m.policy) ? m.policy : [m.policy as Policy]).map(compilePolicy)
    const rule = rules[0] as Rule
    // With `keys`, check i goes to identity `hot-${i % keys}` (several keys at once); else every check to 'hot'.
    const byKey = new Array<number>(m.keys ?? 1).fill(0)
    const one = (_: unknown, i: number): Promise<boolean> => {
      const k = m.keys === undefined ? 0 : i % m.keys
      return rules.length === 1
        ? Promise.resolve(store.consume(rule.ns, m.keys === undefined ? 'hot' : `hot-${k}`, rule, m.now, 1)).then((o) => {
            if (o.allowed) byKey[k] = (byKey[k] as number) + 1
            return o.allowed
          })
        : Promise.resolve(
            (store.consumeSet as NonNullable<Store['consumeSet']>)(
              'hot',
              rules,
              m.now,
              rules.map(() => 1),
            ),
          ).then((os) => os.every((o) => o.allowed))
    }
    const before = { ...leakedOf(store) }
    await new Promise((r) => setTimeout(r, Math.max(0, m.at - Date.now())))
    const t0 = Date.now()
    const results = await Promise.allSettled(Array.from({ length: m.n }, one))
    const t1 = Date.now()
    const failed = results.filter((r) => r.status === 'rejected')
    const leaked: Record<string, number> = {}
    for (const [ns, n] of Object.entries(leakedOf(store))) leaked[ns] = n - (before[ns] ?? 0)
    process.send?.({
      type: 'done',
      leaked,
      admitted: results.filter((r) => r.status === 'fulfilled' && r.value).length,
      admittedByKey: byKey,
      errors: failed.length,
      firstError: failed.length > 0 ? String((failed[0] as PromiseRejectedResult).reason) : undefined,
      t0,
      t1,
    })
  },
)

/** A compare-and-set store's count of units taken for rejected set requests, per namespace (others: none). */
function leakedOf(s: Store): Record<string, number> {
  return (s as { counters?: { setLeaked?: Record<string, number> } }).counters?.setLeaked ?? {}
}
