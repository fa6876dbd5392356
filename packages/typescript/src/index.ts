// halt: the public API of the core package.
import * as presets from './core/presets.js'

export { type AlgorithmImpl, algorithms, EPS, evaluate, runStep } from './core/algorithms/index.js'
export { HaltConfigError, RateLimitExceeded } from './core/errors.js'
export { type FailoverOptions, type OnStoreError, StoreTimeoutError } from './core/failover.js'
export type { CheckOptions, Clock, DecisionEvent, LimiterStats, RateLimiterOptions, StoreErrorEvent, Telemetry } from './core/limiter.js'
export { RateLimiter, toDecision } from './core/limiter.js'
export { compilePolicy, durationMs, Rule } from './core/policy.js'
export { getPlanPolicy } from './core/presets.js'
export type { MaybePromise, Store, SyncStore } from './core/store.js'
export type { AlgorithmName, Decision, Duration, KeyStrategyName, Outcome, Policy, Reason, State } from './core/types.js'
export { Algorithm, KeyStrategy } from './core/types.js'
export { InMemoryStore, type InMemoryStoreOptions } from './stores/memory.js'
export { presets }
