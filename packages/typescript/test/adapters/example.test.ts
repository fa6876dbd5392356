// The README's example (examples/express-api.mjs, what `npm run example` starts) serves, limits and logs as documented.
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'

const ROOT = join(__dirname, '../..')
let child: ChildProcess | undefined

/** Resolves once `ready()` holds (polled; output from a child process arrives when it arrives), failing after 10 s. */
async function until(ready: () => boolean): Promise<void> {
  for (let waited = 0; !ready(); waited += 10) {
    if (waited > 10_000) throw new Error('timed out waiting for the example')
    await new Promise((ok) => setTimeout(ok, 10))
  }
}
afterAll(() => {
  child?.kill()
})

// The example imports the built package ('halt', 'halt/express'): `npm test` builds before testing.
it.runIf(existsSync(join(ROOT, 'dist/adapters/express.js')))(
  'examples/express-api.mjs: headers, 429, exempt health check, one log line per decision',
  async () => {
    child = spawn(process.execPath, [join(ROOT, 'examples/express-api.mjs')], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = '' // stdout and stderr: LoggingTelemetry writes rejections with console.warn
    const collect = (b: Buffer) => {
      out += b.toString()
    }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    child.once('exit', (code) => {
      out += `\n(example exited with ${code})`
    })
    await until(() => /on http:\/\/localhost:\d+/.test(out) || out.includes('exited'))
    const url = (/on (http:\/\/localhost:\d+)/.exec(out) ?? [])[1] as string
    expect(url, out).toBeDefined()
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
    await until(() => out.includes('check=exempt')) // the log line of the last request
    const lines = out.split('\n').filter((l) => l.includes('req_id='))
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d req_id=[0-9a-f]{3} key=ip:203\.0\.113\.7 check=pass remaining=119$/)
    expect(lines.some((l) => / key=ip:203\.0\.113\.7 check=limit remaining=0 retry_after=1$/.test(l))).toBe(true)
    expect(lines.at(-1)).toMatch(/ key=ip:127\.0\.0\.1 check=exempt$/)
  },
)
