// Every error code thrown in src/ has a section in docs/errors.md (the URL in each message points there).
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { SPEC_DIR } from '../support/vectors.js'

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

it('documents every HaltConfigError code', () => {
  const src = join(SPEC_DIR, '../packages/typescript/src')
  const codes = new Set(files(src).flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/'(HALT_[A-Z_]+)'/g)].map((m) => m[1] as string)))
  const docs = readFileSync(join(SPEC_DIR, '../docs/errors.md'), 'utf8')
  const missing = [...codes].filter((c) => !docs.includes(`### ${c.toLowerCase()}`))
  expect(codes.size).toBeGreaterThan(10)
  expect(missing).toEqual([])
})
