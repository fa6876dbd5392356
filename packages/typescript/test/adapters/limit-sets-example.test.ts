// examples/limit-sets.mjs (the README's limit-set and shadow-mode example) runs and prints what the README says.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'

const ROOT = join(__dirname, '../..')

// The example imports the built package ('halt'): `npm test` builds before testing.
it.runIf(existsSync(join(ROOT, 'dist/index.js')))('examples/limit-sets.mjs: per-second and per-day limits, one policy in shadow', () => {
  const out = execFileSync(process.execPath, [join(ROOT, 'examples/limit-sets.mjs')], { encoding: 'utf8' })
  expect(out).toContain('second 1: 15 requests, 10 passed, rejected: 5 by per_second; remaining per_second=0 per_day=40 per_minute_trial=10 (shadow)')
  expect(out).toContain('second 5: 30 requests, 10 passed, rejected: 20 by per_second; remaining per_second=0 per_day=10')
  expect(out).toContain('next day: 5 requests, 5 passed, rejected: none')
  expect(out).toMatch(/near_limit policy=per_minute_trial \(shadow\) key=user:42/)
  expect(out).toMatch(/near_limit policy=per_day key=user:42 remaining=10/)
  expect(out).toContain(`'RateLimit-Policy': '"per_second";q=10;w=1, "per_day";q=50;w=86400'`)
  expect(out).toContain('the shadow policy would have blocked: { per_minute_trial: 48 }')
  // The shadow policy never blocked: every rejection came from an enforced policy.
  expect(out).not.toMatch(/rejected: .*by per_minute_trial/)
})
