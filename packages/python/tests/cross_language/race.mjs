// What every Node side of the cross-language tests does with its limiter: print "ready", wait for a line on stdin (the
// Python side's start), make `checks` checks of the key 'hot', 20 in flight, and print the number admitted and the
// number of store errors (`errors()`: counted by the limiter's telemetry).
import { createInterface } from 'node:readline'

export async function race(limiter, checks, errors) {
  console.log('ready')
  const lines = createInterface({ input: process.stdin })
  await new Promise((resolve) => lines.once('line', resolve))
  let admitted = 0
  let left = Number(checks)
  async function lane() {
    while (left-- > 0) if ((await limiter.check('hot')).allowed) admitted++
  }
  await Promise.all(Array.from({ length: 20 }, lane))
  console.log(`${admitted} ${errors()}`)
  lines.close()
}
