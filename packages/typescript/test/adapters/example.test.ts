// The README's example (examples/express-api.mjs, what `npm run example` starts) serves, limits and logs as documented.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { PACKAGE_ROOT, startExample, until } from '../support/examples.js'

// The example imports the built package ('halt', 'halt/express'): `npm test` builds before testing.
it.runIf(existsSync(join(PACKAGE_ROOT, 'dist/adapters/express.js')))(
  'examples/express-api.mjs: headers, 429, exempt health check, one log line per decision',
  async () => {
    // stdout and stderr: LoggingTelemetry writes rejections with console.warn
    const { url, out } = await startExample('examples/express-api.mjs', { stderr: true })
    const as = { headers: { 'x-forwarded-for': '203.0.113.7' } }
    const first = await fetch(`${url}/api/hello`, as)
    expect(first.status).toBe(200)
    expect(first.headers.get('ratelimit-limit')).toBe('100')
    expect(first.headers.get('ratelimit-remaining')).toBe('119')
    let last = first
    for (let i = 0; i < 125 && last.status === 200; i++) last = await fetch(`${url}/api/hello`, as)
    expect(last.status).toBe(429)
    expect(await last.json()).toMatchObject({ error: 'rate_limit_exceeded', retry_after: 1 })
    expect(last.headers.get('retry-after')).toBe('1')
    const health = await fetch(`${url}/health`)
    expect(health.headers.get('ratelimit-limit')).toBeNull()
    await until(() => out().includes('check=exempt')) // the log line of the last request
    const lines = out()
      .split('\n')
      .filter((l) => l.includes('req_id='))
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d req_id=[0-9a-f]{3} key=ip:203\.0\.113\.7 check=pass remaining=119$/)
    expect(lines.some((l) => / key=ip:203\.0\.113\.7 check=limit remaining=0 retry_after=1$/.test(l))).toBe(true)
    expect(lines.at(-1)).toMatch(/ key=ip:127\.0\.0\.1 check=exempt$/)
  },
)
