// The TypeScript examples of the docs type-check against the package: every ```ts block of README.md and docs/*.md, and
// every @example program of the sources (what an editor shows on hover), is compiled as a module of its own, `halt` and `halt/*` resolved to src/ through the package's export map. A block that
// calls something the package does not have, or passes an option it does not take, fails here, named by file and line.
//
// Examples are fragments: they use an app, a limiter, a login handler they do not declare. Those names are declared
// once below (AMBIENT): the limiters and the store with Halt's real types, the frameworks' objects as `any` (what is
// checked is Halt's side of every call). A block that declares or imports a name itself uses its own. Parameters may
// be untyped, as in JavaScript (noImplicitAny is off); everything else is the project's strict configuration.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ROOT = resolve(PKG, '..', '..')
const FILES = [
  join(ROOT, 'README.md'),
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(ROOT, 'docs', f)),
]

// Every value the package's root exports (a later block uses what an earlier one imported), and its common types.
const ROOT_EXPORTS = Object.keys(await import('../../src/index.js'))
const AMBIENT = `
${ROOT_EXPORTS.map((name) => `declare const ${name}: typeof import('halt').${name}`).join('\n')}
type Policy = import('halt').Policy
type Decision = import('halt').Decision
type RequestView = import('halt').RequestView
declare const haltMiddleware: typeof import('halt/express').haltMiddleware
declare const RedisStore: typeof import('halt/redis').RedisStore
declare const redis: import('ioredis').Redis
declare const quotas: import('halt').QuotaManager<any>
declare const limiter: import('halt').RateLimiter<any>
declare const authLimiter: import('halt').RateLimiter<any>
declare const loginLimiter: import('halt').RateLimiter<any>
declare const reportLimiter: import('halt').RateLimiter<any>
declare const store: import('halt').InMemoryStore
declare const view: import('halt').RequestView
// Not Halt's: the application's own objects and handlers.
declare const app: any, fastify: any, login: any, report: any, metrics: any, items: any, handle: any, accounts: any
declare const sendEmail: (to: string) => Promise<void>
declare const pino: any, Deno: any, Bun: any, log: any, req: any, res: any, audit: any, csvText: string
`

interface Block {
  file: string
  line: number
  code: string
}

/**
 * The code between each line `open` matches and the next line `close` matches, each line through `strip`, with the
 * line of its first code line.
 */
function sections(file: string, open: RegExp, close: RegExp, strip = (line: string) => line): Block[] {
  const lines = readFileSync(file, 'utf8').split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!open.test(lines[i] ?? '')) continue
    let end = i + 1
    while (end < lines.length && !close.test(lines[end] ?? '')) end++
    blocks.push({
      file,
      line: i + 2,
      code: lines
        .slice(i + 1, end)
        .map(strip)
        .join('\n'),
    })
    i = end
  }
  return blocks
}

/** The ```ts blocks of a Markdown file. */
const tsBlocks = (file: string) => sections(file, /^```ts\s*$/, /^```\s*$/)

/**
 * The `@example` sections of the doc comments of a source file (what an editor shows on hover) that are programs, i.e.
 * import what they use; the others illustrate one value or option inline (`parseIp('::1') // { version: 6, ... }`).
 */
const exampleBlocks = (file: string) =>
  sections(file, /^\s*\* @example\s*$/, /^\s*\*\s*@|^\s*\*\/\s*$/, (l) => l.replace(/^\s*\* ?/, '')).filter((b) => /^import /m.test(b.code))

/** `halt` and `halt/*` to their sources, from the export map (`./dist/x.d.ts` is built from `./src/x.ts` or `./src/x/index.ts`). */
function paths(): Record<string, string[]> {
  const exports = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8')).exports as Record<string, unknown>
  const out: Record<string, string[]> = {}
  for (const [sub, target] of Object.entries(exports)) {
    const types = (target as { import?: { types?: string } }).import?.types
    if (types === undefined) continue
    const base = join(PKG, types.replace(/^\.\/dist\//, 'src/').replace(/\.d\.ts$/, ''))
    const source = [`${base}.ts`, join(base, 'index.ts')].find((f) => existsSync(f))
    // Never the built package (node_modules/halt): a stale dist would pass for the sources.
    if (source === undefined) throw new Error(`no source for the export ${sub} (${types})`)
    out[sub === '.' ? 'halt' : `halt/${sub.slice(2)}`] = [source]
  }
  return out
}

/** Type-check `blocks`; the diagnostics of each block, as `file:line: message` with the line in the Markdown file. */
function check(blocks: Block[]): Map<Block, string[]> {
  const dir = join(PKG, 'test', 'docs', '.snippets')
  const virtual = new Map<string, string>([[join(dir, 'ambient.d.ts'), AMBIENT]])
  const of = new Map<string, Block>()
  blocks.forEach((b, n) => {
    const name = join(dir, `block${n}.ts`)
    virtual.set(name, `${b.code}\nexport {}\n`)
    of.set(name, b)
  })
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: ['node'],
    strict: true,
    noImplicitAny: false,
    skipLibCheck: true,
    esModuleInterop: true,
    noEmit: true,
    allowImportingTsExtensions: true,
    baseUrl: PKG,
    paths: paths(),
  }
  const host = ts.createCompilerHost(options)
  const read = host.readFile.bind(host)
  host.readFile = (f) => virtual.get(f) ?? read(f)
  const exists = host.fileExists.bind(host)
  host.fileExists = (f) => virtual.has(f) || exists(f)
  const getSource = host.getSourceFile.bind(host)
  host.getSourceFile = (f, lang, ...rest) => {
    const text = virtual.get(f)
    return text === undefined ? getSource(f, lang, ...rest) : ts.createSourceFile(f, text, lang)
  }
  const program = ts.createProgram([...virtual.keys()], options, host)
  const out = new Map<Block, string[]>(blocks.map((b) => [b, []]))
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    const block = d.file === undefined ? undefined : of.get(d.file.fileName)
    if (block === undefined || d.file === undefined || d.start === undefined) {
      // Not in a block (the ambient names, the package's sources): every block is suspect.
      for (const list of out.values()) list.push(`${d.file?.fileName ?? '?'}: ${message}`)
      continue
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start)
    out.get(block)?.push(`${relative(ROOT, block.file)}:${block.line + line}: ${message}`)
  }
  return out
}

const SOURCES = (readdirSync(join(PKG, 'src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => join(PKG, 'src', f))
const blocks = [...FILES.flatMap(tsBlocks), ...SOURCES.flatMap(exampleBlocks)]
const results = check(blocks)

describe('the docs’ TypeScript examples type-check against the package', () => {
  it('finds the blocks: every TypeScript or JavaScript fence of the docs is a ```ts block checked here', () => {
    const fences = FILES.flatMap((f) => readFileSync(f, 'utf8').split('\n')).filter((l) =>
      /^\s*(```|~~~)\s*(ts|typescript|tsx|js|javascript|jsx|mjs)\b/i.test(l),
    )
    expect(fences.length).toBe(FILES.flatMap(tsBlocks).length)
    expect(blocks.length).toBeGreaterThan(30)
  })
  it.each(blocks.map((b) => [`${relative(ROOT, b.file)}:${b.line}`, b] as const))('%s', (_, b) => {
    expect(results.get(b)).toEqual([])
  })
})
