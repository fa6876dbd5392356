#!/usr/bin/env node
// Entry of the `halt` bin (dist/cli.js): runs main() on the process's arguments and streams.
import { main } from './main.js'
import type { Io } from './simulate.js'

const io: Io = {
  stdout: (s) => {
    process.stdout.write(s)
  },
  stderr: (s) => {
    process.stderr.write(s)
  },
}

main(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code
  },
  (e) => {
    process.stderr.write(`halt: internal error: ${String(e)}\n`)
    process.exitCode = 1
  },
)
