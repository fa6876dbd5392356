// The export map and the build entries cannot drift: every subpath export is built, every entry exported.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { entries } from '../../tsup.config.js'
import { SPEC_DIR } from '../support/vectors.js'

type Target = { types: string; default: string }
const pkg = JSON.parse(readFileSync(join(SPEC_DIR, '../packages/typescript/package.json'), 'utf8')) as {
  exports: Record<string, string | { import: Target; require: Target }>
  bin?: Record<string, string>
}

it('every subpath export points at a build entry (ESM, CJS and types), and every library entry is exported', () => {
  const built = new Set(Object.keys(entries))
  const exported = new Set<string>()
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (subpath === './package.json') continue
    expect(typeof target, subpath).toBe('object')
    const t = target as { import: Target; require: Target }
    const entry = t.import.default.replace(/^\.\/dist\//, '').replace(/\.js$/, '')
    expect(built.has(entry), `${subpath} -> ${entry} is not a tsup entry`).toBe(true)
    expect(t.import).toEqual({ types: `./dist/${entry}.d.ts`, default: `./dist/${entry}.js` })
    expect(t.require).toEqual({ types: `./dist/${entry}.d.cts`, default: `./dist/${entry}.cjs` })
    exported.add(entry)
  }
  const bins = new Set(Object.values(pkg.bin ?? {}).map((p) => p.replace(/^\.\/dist\//, '').replace(/\.c?js$/, '')))
  const unexported = [...built].filter((e) => !exported.has(e) && !bins.has(e))
  expect(unexported).toEqual([])
})
