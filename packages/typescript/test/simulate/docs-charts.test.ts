// docs/algorithms.md, docs/charts/ and the generated docs/traces/ are what scripts/gen-charts.ts produces now.
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const PKG = join(dirname(fileURLToPath(import.meta.url)), '../..')

it('the charts and tables in docs/algorithms.md are up to date (else: npm run charts -w halt)', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gen-charts.ts', '--check'], { cwd: PKG, encoding: 'utf8' })
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  expect(r.stdout).toMatch(/^charts are up to date \(\d+ charts, docs\/algorithms\.md\)/)
})
