// halt: the public API of the core package.
import * as presets from './core/presets.js'

export { type AlgorithmImpl, algorithms, EPS, evaluate, runStep } from './core/algorithms/index.js'
export { HaltConfigError, RateLimitExceeded } from './core/errors.js'
export { type FailoverOptions, type OnStoreError, StoreTimeoutError } from './core/failover.js'
export type { CheckOptions, Clock, CostResolver, KeyExplanation, LimiterStats, PolicyResolver, RateLimiterOptions } from './core/limiter.js'
export { combine, RateLimiter, toDecision } from './core/limiter.js'
export { compilePolicy, durationMs, Rule } from './core/policy.js'
export { getPlanPolicy } from './core/presets.js'
export { compileSet, evaluateSet, type SetResult } from './core/sets.js'
export type { MaybePromise, Store, SyncStore } from './core/store.js'
export type { AlgorithmName, Decision, Duration, KeyStrategyName, Outcome, Policy, PolicyMode, Reason, State } from './core/types.js'
export { Algorithm, KeyStrategy } from './core/types.js'
export { type AdapterOptions, Gate, type HttpLimiter } from './http/gate.js'
export {
  type HeaderFormat,
  moreRestrictive,
  rateLimitHeaders,
  rejectionBody,
  rejectionStatus,
  type SetHeader,
  writeRateLimitHeaders,
} from './http/headers.js'
export { type Cidr, formatIp, type IpAddress, PRIVATE_RANGES, parseCidr, parseIp } from './http/ip.js'
export { HEALTH_CHECK_PATHS, isCanonicalPath } from './http/paths.js'
export { type QuotaConsumer, QuotaGuard, type QuotaOption } from './http/quota.js'
export { pathOf, type RequestView, WebRequestView } from './http/request.js'
export { type ExemptReason, type HttpOptions, identityKey, type MissingIdentity } from './http/rules.js'
export { type HaltWarning, WarningCode, type WarningCodeName } from './http/warnings.js'
export { type PeriodBounds, periodBounds, QuotaPeriod, type QuotaPeriodName } from './saas/calendar.js'
export { Penalty, type PenaltyConfig, PenaltyManager, type PenaltyManagerOptions } from './saas/penalty.js'
export { definePlans, type PlanEntry, type PlanTable } from './saas/plans.js'
export { type Quota, type QuotaCallContext, QuotaManager, type QuotaManagerOptions, type QuotaResult, type QuotaState } from './saas/quota.js'
export { InMemoryStore, type InMemoryStoreOptions } from './stores/memory.js'
export { type OutcomeLabel, outcomeOf, reasonOf } from './telemetry/labels.js'
export { type Logger, LoggingTelemetry, type LoggingTelemetryOptions } from './telemetry/logging.js'
export { type DecisionCounts, type LatencySnapshot, type MetricsSnapshot, MetricsTelemetry, type MetricsTelemetryOptions } from './telemetry/metrics.js'
export type { DecisionEvent, StoreErrorEvent, Telemetry, TelemetryOption } from './telemetry/types.js'
export { presets }
