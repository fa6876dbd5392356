// halt/otel: OTelTelemetry, decisions as OpenTelemetry metrics and as events on the active span (@opentelemetry/api).
import { HaltConfigError } from '../../core/errors.js'
import { LATENCY_BUCKETS_MS, outcomeOf, reasonOf } from '../labels.js'
import { loadPeer } from '../peer.js'
import type { DecisionEvent, StoreErrorEvent, Telemetry } from '../types.js'

type Attributes = Record<string, string | number | boolean>
interface Counter {
  add(value: number, attributes?: Attributes): void
}
interface Histogram {
  record(value: number, attributes?: Attributes): void
}
interface InstrumentOptions {
  description?: string
  unit?: string
  advice?: { explicitBucketBoundaries?: number[] }
}
/** The parts of an OpenTelemetry `Meter` used here. */
export interface OTelMeter {
  createCounter(name: string, options?: InstrumentOptions): Counter
  createHistogram(name: string, options?: InstrumentOptions): Histogram
}
/** The parts of an OpenTelemetry `Span` used here. */
export interface OTelSpan {
  addEvent(name: string, attributes?: Attributes): unknown
  isRecording(): boolean
}
/** The parts of `@opentelemetry/api` used here: `import * as api from '@opentelemetry/api'`. */
export interface OTelApi {
  metrics: { getMeter(name: string): OTelMeter }
  trace: { getActiveSpan(): OTelSpan | undefined }
}

export interface OTelTelemetryOptions {
  /** Where the instruments are created. Default `metrics.getMeter('halt')` of the global meter provider. */
  meter?: OTelMeter
  /** Add a `halt.decision` event to the active span of each check. Default true. */
  spanEvents?: boolean
  /** Put the storage identity (`halt.key`: an address, a user id, a hashed API key) on span events. Default true; never on metrics. */
  recordKey?: boolean
  /** The `@opentelemetry/api` module, for runtimes where it cannot be `require`d. Default: loaded on first use. */
  api?: OTelApi
}

/**
 * Exports a limiter's telemetry through the OpenTelemetry API (an optional
 * peer dependency: `npm install @opentelemetry/api`), to whatever SDK the
 * application registered.
 *
 * Metrics (attributes `halt.policy`, `halt.outcome` = `allowed` | `blocked` | `exempt`,
 * `halt.reason`, `halt.shadow`; never the key): counters `halt.decisions`,
 * `halt.near_limit`, `halt.store_errors` (with `halt.operation`, `halt.action`),
 * and the histogram `halt.check.duration` in seconds.
 *
 * Span events on the active span (the request's, from your HTTP instrumentation):
 * `halt.decision` with the policy, outcome, reason, remaining, limit, retry
 * after, cost and key; `halt.near_limit`; `halt.store_error`.
 *
 * @example
 * import { RateLimiter, presets } from 'halt'
 * import { OTelTelemetry } from 'halt/otel'
 * const limiter = new RateLimiter({ policy: presets.PUBLIC_API, telemetry: new OTelTelemetry() })
 */
export class OTelTelemetry implements Telemetry {
  private readonly decisions: Counter
  private readonly near: Counter
  private readonly errors: Counter
  private readonly duration: Histogram
  private readonly activeSpan: (() => OTelSpan | undefined) | undefined
  private readonly recordKey: boolean

  constructor(options: OTelTelemetryOptions = {}) {
    if (options === null || typeof options !== 'object') throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'OTelTelemetry: options must be an object.')
    const spanEvents = options.spanEvents ?? true
    let api = options.api
    const needApi = options.meter === undefined || spanEvents
    if (api === undefined && needApi) api = loadPeer<OTelApi>('@opentelemetry/api', 'OTelTelemetry', 'new OTelTelemetry({ api })')
    const meter = options.meter ?? (api as OTelApi).metrics.getMeter('halt')
    if (meter === null || typeof meter !== 'object' || typeof meter.createCounter !== 'function' || typeof meter.createHistogram !== 'function') {
      throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'OTelTelemetry: meter must be an OpenTelemetry Meter (metrics.getMeter(name)).')
    }
    this.decisions = meter.createCounter('halt.decisions', { description: 'Rate-limit decisions.', unit: '{decision}' })
    this.near = meter.createCounter('halt.near_limit', { description: 'Checks that brought an identity close to its limit.', unit: '{check}' })
    this.errors = meter.createCounter('halt.store_errors', { description: 'Store calls that failed or timed out.', unit: '{error}' })
    this.duration = meter.createHistogram('halt.check.duration', {
      description: 'Time of a rate-limit check, the store call included.',
      unit: 's',
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS_MS.map((ms) => ms / 1000) },
    })
    const trace = (api as OTelApi | undefined)?.trace
    this.activeSpan = spanEvents && trace !== undefined ? () => trace.getActiveSpan() : undefined
    this.recordKey = options.recordKey ?? true
  }

  onCheck(e: DecisionEvent): void {
    const d = e.decision
    const outcome = outcomeOf(d)
    const reason = reasonOf(d)
    const shadow = e.shadow === true
    this.decisions.add(1, { 'halt.policy': d.policy, 'halt.outcome': outcome, 'halt.reason': reason, 'halt.shadow': shadow })
    if (e.durationMs !== undefined) this.duration.record(e.durationMs / 1000, { 'halt.policy': d.policy })
    const span = this.span()
    if (span === undefined) return
    const attributes: Attributes = {
      'halt.policy': d.policy,
      'halt.outcome': outcome,
      'halt.reason': reason,
      'halt.shadow': shadow,
      'halt.remaining': d.remaining,
      'halt.limit': d.limit,
      'halt.retry_after': d.retryAfter,
      'halt.cost': e.cost,
    }
    if (this.recordKey && e.key !== '') attributes['halt.key'] = e.key
    if (e.storeError !== undefined) attributes['halt.store_error'] = e.storeError
    span.addEvent('halt.decision', attributes)
  }

  onNearLimit(e: DecisionEvent): void {
    const d = e.decision
    this.near.add(1, { 'halt.policy': d.policy, 'halt.shadow': e.shadow === true })
    const span = this.span()
    if (span === undefined) return
    const attributes: Attributes = { 'halt.policy': d.policy, 'halt.remaining': d.remaining, 'halt.limit': d.limit, 'halt.shadow': e.shadow === true }
    if (this.recordKey && e.key !== '') attributes['halt.key'] = e.key
    span.addEvent('halt.near_limit', attributes)
  }

  onError(e: StoreErrorEvent): void {
    this.errors.add(1, { 'halt.policy': e.policy, 'halt.operation': e.operation, 'halt.action': e.action })
    const span = this.span()
    if (span === undefined) return
    const message = e.error instanceof Error ? e.error.message : String(e.error)
    span.addEvent('halt.store_error', {
      'halt.policy': e.policy,
      'halt.operation': e.operation,
      'halt.action': e.action,
      'exception.message': message.slice(0, 300),
    })
  }

  private span(): OTelSpan | undefined {
    if (this.activeSpan === undefined) return undefined
    const span = this.activeSpan()
    return span?.isRecording() ? span : undefined
  }
}
