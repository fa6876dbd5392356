// A small, strict command-line parser: long and short options, `--name=value`, repeatable options, clear errors.

/** A mistake in how the command was called: printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  /** Whether pointing at --help helps (not for a missing file or package). */
  readonly showHelp: boolean
  constructor(message: string, showHelp = true) {
    super(message)
    this.name = 'UsageError'
    this.showHelp = showHelp
  }
}

export interface OptionSpec {
  name: string
  short?: string
  /** Placeholder for the value (`FILE`, `N`); absent for a flag. */
  value?: string
  /** May be given several times (values collected in order). */
  multiple?: boolean
  help: string
}

export type Parsed = { values: Map<string, string[]>; positionals: string[] }

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[]
      const up = d[i - 1] as number[]
      row[j] = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
  }
  return (d[a.length] as number[])[b.length] as number
}

function unknown(arg: string, specs: OptionSpec[]): UsageError {
  const name = arg.replace(/^-+/, '').split('=')[0] as string
  const close = specs.map((s) => s.name).find((s) => distance(s, name) <= 2)
  return new UsageError(`unknown option ${arg.split('=')[0]}${close ? ` (did you mean --${close}?)` : ''}`)
}

/** Parse `argv` (without the command name). Values of flags are `['true']`. */
export function parseArgs(argv: readonly string[], specs: OptionSpec[]): Parsed {
  const values = new Map<string, string[]>()
  const positionals: string[] = []
  const set = (spec: OptionSpec, value: string, as: string) => {
    const list = values.get(spec.name)
    if (list !== undefined && !spec.multiple) throw new UsageError(`${as} was given twice; give it once`)
    if (list === undefined) values.set(spec.name, [value])
    else list.push(value)
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg)
      continue
    }
    const long = arg.startsWith('--')
    const eq = arg.indexOf('=')
    const name = long ? arg.slice(2, eq < 0 ? undefined : eq) : arg.slice(1, 2)
    const spec = specs.find((s) => (long ? s.name === name : s.short === name))
    if (spec === undefined) throw unknown(arg, specs)
    const as = long ? `--${name}` : `-${name}`
    if (spec.value === undefined) {
      if (eq >= 0 || (!long && arg.length > 2)) throw new UsageError(`${as} takes no value`)
      set(spec, 'true', as)
      continue
    }
    let value: string | undefined
    if (long && eq >= 0) value = arg.slice(eq + 1)
    else if (!long && arg.length > 2) value = arg.slice(2)
    else {
      value = argv[i + 1]
      if (value === undefined || (value.startsWith('-') && value !== '-' && !/^-\d/.test(value))) {
        throw new UsageError(`${as} needs a value (${spec.value})`)
      }
      i++
    }
    set(spec, value, as)
  }
  return { values, positionals }
}

/** The options as aligned help lines. */
export function optionHelp(specs: OptionSpec[]): string {
  const left = specs.map((s) => `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.value ? ` ${s.value}` : ''}`)
  const width = Math.max(...left.map((l) => l.length))
  return specs
    .map((s, i) => {
      const [first, ...rest] = s.help.split('\n')
      return [`  ${(left[i] as string).padEnd(width)}  ${first}`, ...rest.map((r) => `  ${''.padEnd(width)}  ${r}`)].join('\n')
    })
    .join('\n')
}
