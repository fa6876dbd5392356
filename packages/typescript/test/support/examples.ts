// Running an example as a child process, as a newcomer would: its output collected, its URL awaited, killed afterwards.
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterAll } from 'vitest'

/** packages/typescript: the examples import the built package ('halt', 'halt/express', ...), which `npm test` builds first. */
export const PACKAGE_ROOT = join(__dirname, '../..')

const children = new Set<ChildProcess>()
afterAll(() => {
  for (const c of children) c.kill()
})

/** Resolves once `ready()` holds (polled: output from a child process arrives when it arrives), failing after `ms`. */
export async function until(ready: () => boolean, ms = 10_000): Promise<void> {
  for (let waited = 0; !ready(); waited += 10) {
    if (waited > ms) throw new Error('timed out waiting for the example')
    await new Promise((ok) => setTimeout(ok, 10))
  }
}

export interface RunningExample {
  /** The first `http://localhost:PORT` the example printed. */
  url: string
  /** Everything it printed so far (stdout, and stderr when asked), up to `maxOutput` characters. */
  out(): string
}

/**
 * `node <file> [...args]` from packages/typescript with PORT=0, until `greetings` lines "on http://localhost:PORT"
 * (one per process) are printed. The process is killed after the test file.
 */
export async function startExample(
  file: string,
  options: { args?: string[]; env?: Record<string, string>; stderr?: boolean; greetings?: number; maxOutput?: number; waitMs?: number } = {},
): Promise<RunningExample> {
  const child = spawn(process.execPath, [join(PACKAGE_ROOT, file), ...(options.args ?? []).map((a) => join(PACKAGE_ROOT, a))], {
    env: { ...process.env, PORT: '0', ...options.env },
    stdio: ['ignore', 'pipe', options.stderr ? 'pipe' : 'inherit'],
  })
  children.add(child)
  let out = ''
  const max = options.maxOutput ?? Number.POSITIVE_INFINITY
  const collect = (b: Buffer) => {
    if (out.length < max) out += b.toString() // beyond the cap, drained and dropped
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  child.once('exit', (code) => {
    out += `\n(example exited with ${code})`
  })
  const greetings = options.greetings ?? 1
  await until(() => (out.match(/on http:\/\/localhost:\d+/g) ?? []).length >= greetings || out.includes('(example exited'), options.waitMs)
  const url = /on (http:\/\/localhost:\d+)/.exec(out)?.[1]
  if (url === undefined) throw new Error(`the example did not start:\n${out}`)
  return { url, out: () => out }
}
