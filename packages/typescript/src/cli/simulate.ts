// `halt simulate`: read or generate a trace, replay it through policies, print the summary, write the chart.
import { readFileSync, writeFileSync } from 'node:fs'
import { extname } from 'node:path'
import { HaltConfigError } from '../core/errors.js'
import { compilePolicy } from '../core/policy.js'
import type { Policy } from '../core/types.js'
import {
  formatSummary,
  formatTraceCsv,
  generateTrace,
  PATTERNS,
  type Pattern,
  POLICY_SPEC_GRAMMAR,
  parsePolicySpec,
  parseTrace,
  type SimulationResult,
  simulate,
  type Trace,
} from '../simulate/index.js'
import { type OptionSpec, optionHelp, type Parsed, parseArgs, UsageError } from './args.js'

const OPTIONS: OptionSpec[] = [
  {
    name: 'policy',
    short: 'p',
    value: 'SPEC',
    multiple: true,
    help: 'a policy to replay the traffic through (repeat for several: one chart lane each)',
  },
  { name: 'trace', short: 't', value: 'FILE', help: "read traffic from a CSV or JSON-lines file ('-' for stdin)" },
  { name: 'generate', short: 'g', value: 'PATTERN', help: `generate traffic instead: ${PATTERNS.join(', ')}` },
  { name: 'seed', value: 'N', help: 'generator seed: the same seed gives the same trace (default 1)' },
  { name: 'duration', value: 'DURATION', help: 'generated trace length, e.g. 90s, 10m, 1h (default 10m)' },
  { name: 'rate', value: 'RATE', help: 'generated rate, e.g. 5/s, 300/m (default 5/s); per client for abusive, final for ramp' },
  { name: 'keys', value: 'N', help: 'generated clients (default 1; abusive: 10 well-behaved plus one abuser)' },
  { name: 'time-unit', value: 'UNIT', help: 'numeric timestamps in the trace are s or ms (default auto: below 1e11 is seconds)' },
  { name: 'save-trace', value: 'FILE', help: 'also write the trace as CSV (to commit a generated trace, or to normalise one)' },
  { name: 'out', short: 'o', value: 'FILE', help: "chart file (default halt-simulation.svg, or .png with --format png); '-' for stdout" },
  { name: 'format', short: 'f', value: 'svg|png', help: "chart format (default: from --out's extension, else svg); png needs @resvg/resvg-js" },
  { name: 'no-chart', help: 'print the summary only' },
  { name: 'title', value: 'TEXT', help: "the chart's title (default: the trace's name)" },
  { name: 'width', value: 'PX', help: 'chart width in pixels (default 960)' },
  { name: 'json', help: 'print the summary as JSON instead of a table' },
  { name: 'top', value: 'N', help: 'per-key rows per policy when the trace has several keys (default 10; 0 for none)' },
  { name: 'help', short: 'h', help: 'show this help' },
]

export const SIMULATE_HELP = `halt simulate: replay traffic through rate-limit policies; print what each admits and rejects, and draw it.

Usage:
  halt simulate --policy SPEC [--policy SPEC ...] (--trace FILE | --generate PATTERN) [options]

Examples:
  halt simulate -p token_bucket:100/1m,burst=120 -p sliding_window:100/1m --trace access.csv
  halt simulate -p fixed_window:10/1m -p sliding_window:10/1m --generate bursty --seed 42 --duration 10m --rate 5/s
  halt simulate -p gcra:5/s,burst=20 --generate abusive --rate 1/s --out abuse.png --json

Options:
${optionHelp(OPTIONS)}

Policies (SPEC):
  ${POLICY_SPEC_GRAMMAR}
    ALGORITHM      token_bucket, gcra, fixed_window, sliding_window, leaky_bucket (or tb, fw, sw, lb)
    LIMIT/WINDOW   units per window: 100/1m, 100/60s, 5/s, 1000/1h (window units ms, s, m, h, d)
    burst=N        capacity of token_bucket, gcra, leaky_bucket (default LIMIT)
    precision=N    sliding_window sub-buckets per window (default 10)
    mode=shaping   leaky_bucket: admit with a delay instead of rejecting when it can (or just: shaping)
    block=DURATION cooldown after a rejection, e.g. block=5m
    cost=N         units per request when the trace gives none (default 1)
    name=LABEL     the lane's name in the chart and table
  A SPEC starting with { is read as a JSON policy: '{"algorithm":"gcra","limit":100,"window":"1m"}'.
  Each policy sees the whole trace on its own, with state per key, as if it were the only one deployed.

Traces (--trace):
  CSV, one request per line: timestamp[,key][,cost]. A header line may name the columns instead
  (timestamp|time|ts, key|client|ip|user, cost|weight; other columns are ignored).
  JSON lines: {"timestamp": ..., "key": ..., "cost": ...} or [timestamp, key, cost] per line.
  Blank lines and lines starting with # are skipped. Requests are replayed in time order.
  Timestamps: epoch seconds (1700000000.25), epoch ms (1700000000250), seconds from any origin (0, 12.5),
  or ISO 8601 (2024-05-01T12:00:00.250Z; no offset means UTC). A number below 1e11 is seconds, else ms;
  every numeric timestamp in a file must read the same way (--time-unit forces one).

Generated traffic (--generate; random arrivals, repeatable with --seed):
  steady    arrivals at --rate
  bursty    clumps of 20 requests within 1s, clumps at random; mean --rate
  spike     --rate throughout, ten times that in the middle tenth of the trace
  ramp      from 0 rising linearly to --rate
  abusive   --keys well-behaved clients at --rate each, and one 'abuser' at ten times that

Output:
  A table per policy: requests, admitted, rejected, the most units admitted for one key in any interval
  of the policy's window (the sliding window never exceeds LIMIT; the others can), the longest
  retry-after a rejected request was told, and the longest shaping delay; then the same per key.
  The chart: one lane per policy on one time axis; bars of admitted and rejected requests, and a line
  of units admitted in the trailing window against the limit (shaping: the delays asked).

Exit status: 0 done; 2 bad arguments, policy or trace (the message names the line and the problem).
`

export interface Io {
  stdout(s: string | Uint8Array): void
  stderr(s: string): void
  /** Loads the PNG rasteriser; tests replace it. Default: import('@resvg/resvg-js'). */
  loadRasterizer?: () => Promise<unknown>
}

function one(p: Parsed, name: string): string | undefined {
  return p.values.get(name)?.[0]
}

function integer(p: Parsed, name: string, min: number): number | undefined {
  const v = one(p, name)
  if (v === undefined) return undefined
  const n = /^-?\d+$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number >= ${min}, got "${v}"`)
  return n
}

function readText(path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message
    throw new UsageError(`cannot read trace ${path}: ${why}`, false)
  }
}

function write(path: string, data: string | Uint8Array, what: string): void {
  try {
    writeFileSync(path, data)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'its folder does not exist' : code === 'EACCES' ? 'permission denied' : (e as Error).message
    throw new UsageError(`cannot write ${what} ${path}: ${why}`, false)
  }
}

/** The generator options in the command's words, for the header of a saved trace. */
function generatorCommand(p: Parsed): string {
  const keys = p.values.has('keys') ? ` --keys ${one(p, 'keys')}` : ''
  return `halt simulate --generate ${one(p, 'generate')} --seed ${one(p, 'seed') ?? 1} --duration ${one(p, 'duration') ?? '10m'} --rate ${one(p, 'rate') ?? '5/s'}${keys}`
}

function traffic(p: Parsed): Trace {
  const file = one(p, 'trace')
  const pattern = one(p, 'generate')
  if ((file === undefined) === (pattern === undefined)) {
    throw new UsageError(file === undefined ? 'give traffic: --trace FILE or --generate PATTERN' : 'give either --trace or --generate, not both')
  }
  if (file !== undefined) {
    const misplaced = ['seed', 'duration', 'rate', 'keys'].find((o) => p.values.has(o))
    if (misplaced !== undefined) throw new UsageError(`--${misplaced} applies to --generate, not to --trace`)
    const unit = one(p, 'time-unit') ?? 'auto'
    if (unit !== 'auto' && unit !== 's' && unit !== 'ms') throw new UsageError(`--time-unit must be s, ms or auto, got "${unit}"`)
    const ext = extname(file).toLowerCase()
    const format = ext === '.jsonl' || ext === '.ndjson' ? 'jsonl' : ext === '.csv' ? 'csv' : 'auto'
    return parseTrace(readText(file), { source: file === '-' ? 'stdin' : file, format, timeUnit: unit })
  }
  if (p.values.has('time-unit')) throw new UsageError('--time-unit applies to --trace, not to --generate')
  if (!PATTERNS.includes(pattern as Pattern)) throw new UsageError(`unknown pattern "${pattern}" for --generate; use one of ${PATTERNS.join(', ')}`)
  return generateTrace({
    pattern: pattern as Pattern,
    seed: integer(p, 'seed', 0) ?? 1,
    duration: one(p, 'duration') ?? '10m',
    rate: one(p, 'rate') ?? '5/s',
    ...(p.values.has('keys') && { keys: integer(p, 'keys', 1) }),
  })
}

function chartTarget(p: Parsed): { path: string; format: 'svg' | 'png' } | undefined {
  if (p.values.has('no-chart')) {
    const clash = ['out', 'format', 'title', 'width'].find((o) => p.values.has(o))
    if (clash !== undefined) throw new UsageError(`--${clash} and --no-chart contradict each other`)
    return undefined
  }
  const given = one(p, 'format')
  if (given !== undefined && given !== 'svg' && given !== 'png') throw new UsageError(`--format must be svg or png, got "${given}"`)
  const out = one(p, 'out')
  const ext = out === undefined || out === '-' ? '' : extname(out).toLowerCase().slice(1)
  if (ext !== '' && ext !== 'svg' && ext !== 'png') throw new UsageError(`--out ${out}: the chart is .svg or .png`)
  if (given !== undefined && ext !== '' && given !== ext) throw new UsageError(`--out ${out} ends in .${ext} but --format is ${given}`)
  const format = (given ?? (ext === '' ? 'svg' : ext)) as 'svg' | 'png'
  return { path: out ?? `halt-simulation.${format}`, format }
}

type Resvg = typeof import('@resvg/resvg-js')

/** Rasterise with @resvg/resvg-js, an optional dependency loaded only when PNG is asked for. */
async function toPng(svg: string, load: () => Promise<unknown>): Promise<Uint8Array> {
  let resvg: Resvg
  try {
    resvg = (await load()) as Resvg
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' || (e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
    throw new UsageError(
      missing
        ? 'PNG output needs the optional package @resvg/resvg-js, which is not installed. Install it next to halt (npm install @resvg/resvg-js), run npx -p halt -p @resvg/resvg-js halt simulate ..., or write SVG (the default)'
        : `PNG output needs @resvg/resvg-js, which is installed but failed to load (${(e as Error).message}); write SVG instead (the default)`,
      false,
    )
  }
  const Resvg = resvg.Resvg ?? (resvg as unknown as { default: Resvg }).default.Resvg
  return new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true }, background: '#ffffff' }).render().asPng()
}

function json(result: SimulationResult, top: number, chart: { path: string; format: string } | undefined): string {
  return `${JSON.stringify(
    {
      trace: result.trace,
      policies: result.summaries.map(({ keys, ...s }) => ({ ...s, keyCount: keys.length, keys: keys.slice(0, top) })),
      chart: chart ?? null,
    },
    null,
    2,
  )}\n`
}

/** Run `halt simulate` with `argv` (after the command name). Returns the exit code; throws UsageError, HaltConfigError, TraceError. */
export async function simulateCommand(argv: readonly string[], io: Io): Promise<number> {
  const p = parseArgs(argv, OPTIONS)
  if (p.values.has('help')) {
    io.stdout(SIMULATE_HELP)
    return 0
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument "${p.positionals[0]}" (options start with --; see --help)`)
  const specs = p.values.get('policy') ?? []
  if (specs.length === 0) throw new UsageError(`give at least one --policy ${POLICY_SPEC_GRAMMAR}, e.g. --policy token_bucket:100/1m,burst=120`)
  const policies: Policy[] = specs.map(parsePolicySpec)
  // Fail on a bad policy before reading a large trace, saying which --policy it is.
  policies.forEach((policy, i) => {
    try {
      compilePolicy(policy)
    } catch (e) {
      if (e instanceof HaltConfigError && e.code !== 'HALT_INVALID_POLICY_SPEC') throw new UsageError(`--policy ${specs[i]}: ${e.message}`)
      throw e
    }
  })
  const chart = chartTarget(p)
  const top = integer(p, 'top', 0) ?? 10
  const width = integer(p, 'width', 480)
  const trace = traffic(p)
  const saveTo = one(p, 'save-trace')
  if (saveTo !== undefined) {
    const origin = p.values.has('generate') ? `generated by: ${generatorCommand(p)}` : `read from ${trace.name}`
    write(saveTo, formatTraceCsv(trace, `${trace.name}\n${origin}`), 'trace')
  }
  const title = one(p, 'title')
  const result = simulate(
    policies,
    trace,
    chart === undefined ? { chart: false } : { chart: { ...(title !== undefined && { title }), ...(width !== undefined && { width }) } },
  )

  const log = chart?.path === '-' ? io.stderr : io.stdout
  if (chart !== undefined) {
    const data = chart.format === 'png' ? await toPng(result.svg, io.loadRasterizer ?? (() => import('@resvg/resvg-js'))) : result.svg
    if (chart.path === '-') io.stdout(data)
    else write(chart.path, data, 'chart')
  }
  if (p.values.has('json')) log(json(result, top, chart))
  else {
    log(`${result.trace.name}: ${result.trace.requests} requests${result.trace.keys > 1 ? ` from ${result.trace.keys} keys` : ''}\n\n`)
    log(formatSummary(result, { top }))
    if (chart !== undefined && chart.path !== '-')
      log(`\nchart: ${chart.path} (${chart.format}, ${result.runs.length} lane${result.runs.length > 1 ? 's' : ''})\n`)
  }
  return 0
}
