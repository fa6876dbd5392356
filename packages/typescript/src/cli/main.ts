// The `halt` command's dispatch and error handling: a mistake prints one line and exits 2, without a stack.
import pkg from '../../package.json' with { type: 'json' }
import { HaltConfigError } from '../core/errors.js'
import { TraceError } from '../simulate/trace.js'
import { UsageError } from './args.js'
import { type Io, SIMULATE_HELP, simulateCommand } from './simulate.js'

const HELP = `halt: rate limiting for APIs, from the command line.

Usage:
  halt simulate --policy SPEC [--policy SPEC ...] (--trace FILE | --generate PATTERN) [options]
  halt --help | --version

Commands:
  simulate   replay traffic through one or more policies with Halt's real algorithms; print what each
             admits and rejects, and draw a chart (one lane per policy). 'halt simulate --help' for more.
`

/** Run the CLI with `argv` (after `node halt`). Returns the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.stdout(rest[0] === 'simulate' ? SIMULATE_HELP : HELP)
      return 0
    }
    if (command === '--version' || command === '-v') {
      io.stdout(`${pkg.version}\n`)
      return 0
    }
    if (command === 'simulate') return await simulateCommand(rest, io)
    throw new UsageError(`unknown command "${command}"; the command is simulate`)
  } catch (e) {
    if (e instanceof TraceError) {
      io.stderr(`halt simulate: ${e.message}\n`)
      return 2
    }
    if (e instanceof UsageError || e instanceof HaltConfigError) {
      const cmd = command === 'simulate' ? 'halt simulate' : 'halt'
      const help = e instanceof UsageError && !e.showHelp ? '' : `Run '${cmd} --help' for usage.\n`
      io.stderr(`${cmd}: ${e.message}\n${help}`)
      return 2
    }
    io.stderr(`halt: internal error: ${(e as Error)?.stack ?? String(e)}\nPlease report it with the command you ran.\n`)
    return 1
  }
}
