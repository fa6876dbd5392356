// The Next.js (Edge), Fetch and Hono entries import no Node.js built-in, directly or through anything they pull in:
// each is bundled with esbuild for the platform-neutral target (as the Edge runtime sees it) and every import is inspected.
import { existsSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join } from 'node:path'
import { build, type Plugin } from 'esbuild'
import { describe, expect, it } from 'vitest'

const ROOT = join(__dirname, '../..')
const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))

/** Records every import that is a Node built-in (and keeps the framework packages external). */
function inspect(found: string[]): Plugin {
  return {
    name: 'no-node-builtins',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (BUILTINS.has(args.path) || args.path.startsWith('node:')) {
          found.push(`${args.path} (from ${args.importer.replace(ROOT, '.')})`)
          return { path: args.path, external: true }
        }
        if (/^(next|hono|react)(\/|$)/.test(args.path)) return { path: args.path, external: true }
        return undefined
      })
    },
  }
}

async function bundle(entry: string): Promise<{ found: string[]; text: string }> {
  const found: string[] = []
  const out = await build({
    entryPoints: [join(ROOT, entry)],
    bundle: true,
    write: false,
    platform: 'neutral',
    format: 'esm',
    mainFields: ['module', 'main'],
    logLevel: 'silent',
    plugins: [inspect(found)],
  })
  return { found, text: out.outputFiles.map((f) => f.text).join('\n') }
}

/** Source entry -> built entry (tsup.config.ts). */
const ENTRIES: [string, string][] = [
  ['src/adapters/next/index.ts', 'dist/adapters/next.js'],
  ['src/adapters/fetch/index.ts', 'dist/adapters/fetch.js'],
  ['src/adapters/hono/index.ts', 'dist/adapters/hono.js'],
  ['src/index.ts', 'dist/index.js'],
]

describe('Edge-safe entries import no Node built-in', () => {
  for (const [e] of ENTRIES) {
    it(e, async () => {
      const { found, text } = await bundle(e)
      expect(found).toEqual([])
      // (process.env appears only inside error messages that suggest it.)
      expect(text).not.toMatch(/\brequire\(|\bBuffer\.|(?<!apiKeySecret: )process\.env/)
      expect(text.length).toBeGreaterThan(1000)
    })
  }

  // After `npm run build` (as in `npm test`): what ships, chunks included.
  const built = ENTRIES.map(([, d]) => d).filter((d) => existsSync(join(ROOT, d)))
  it.runIf(built.length === ENTRIES.length)('the built dist entries too', async () => {
    for (const d of built) expect((await bundle(d)).found, d).toEqual([])
  })

  it('the check itself catches a Node import', async () => {
    const found: string[] = []
    await build({
      stdin: { contents: "import { createHash } from 'node:crypto'; import fs from 'fs'; export const x = [createHash, fs]", resolveDir: ROOT },
      bundle: true,
      write: false,
      platform: 'neutral',
      logLevel: 'silent',
      plugins: [inspect(found)],
    })
    expect(found.map((f) => f.split(' ')[0])).toEqual(['node:crypto', 'fs'])
  })
})
