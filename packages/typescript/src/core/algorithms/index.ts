// The algorithm registry: name -> implementation.
import type { AlgorithmName } from '../types.js'
import { fixedWindow } from './fixed-window.js'
import { gcra } from './gcra.js'
import type { AlgorithmImpl } from './kernel.js'
import { leakyBucket } from './leaky-bucket.js'
import { slidingWindow } from './sliding-window.js'
import { tokenBucket } from './token-bucket.js'

export const algorithms: Record<AlgorithmName, AlgorithmImpl> = {
  token_bucket: tokenBucket,
  fixed_window: fixedWindow,
  sliding_window: slidingWindow,
  leaky_bucket: leakyBucket,
  gcra,
}

export { type AlgorithmImpl, EPS, evaluate, runStep } from './kernel.js'
