// halt/prometheus: PrometheusTelemetry, decisions, near-limit signals, store errors and check latency as prom-client metrics.
import { HaltConfigError } from '../../core/errors.js'
import { LATENCY_BUCKETS_MS, outcomeOf, reasonOf } from '../labels.js'
import { loadPeer } from '../peer.js'
import type { DecisionEvent, StoreErrorEvent, Telemetry } from '../types.js'

/** The parts of a prom-client `Registry` used here (any version from 14 on). */
export interface PrometheusRegistry {
  getSingleMetric(name: string): unknown
}

type Labels = Record<string, string>
interface Counter {
  inc(labels: Labels, value?: number): void
}
interface Histogram {
  observe(labels: Labels, value: number): void
}
interface MetricConfig {
  name: string
  help: string
  labelNames: string[]
  registers: PrometheusRegistry[]
  buckets?: number[]
}
/** The parts of the prom-client module used here: `import * as client from 'prom-client'`. */
export interface PrometheusClient {
  Counter: new (config: never) => unknown
  Histogram: new (config: never) => unknown
  register: PrometheusRegistry
}

export interface PrometheusTelemetryOptions {
  /** Where the metrics are registered. Default prom-client's global `register` (what `register.metrics()` serves). */
  registry?: PrometheusRegistry
  /** Prepended to every metric name. Default `'halt_'`. */
  prefix?: string
  /** Latency histogram bucket bounds in seconds. Default from 10 µs to 2.5 s. */
  buckets?: number[]
  /** The prom-client module, for runtimes where it cannot be `require`d. Default: loaded on first use. */
  client?: PrometheusClient
}

/**
 * Exports a limiter's telemetry as Prometheus metrics (through prom-client, an
 * optional peer dependency: `npm install prom-client`):
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `halt_decisions_total` | counter | `policy`, `outcome` (`allowed`, `blocked`, `exempt`), `reason`, `shadow` |
 * | `halt_near_limit_total` | counter | `policy`, `shadow` |
 * | `halt_store_errors_total` | counter | `policy`, `operation`, `action` |
 * | `halt_check_duration_seconds` | histogram | `policy` |
 *
 * No label carries a key or anything from the request: the series stay few
 * whatever the traffic. One instance can serve several limiters; a second
 * instance on the same registry shares the metrics already registered there.
 *
 * @example
 * import { register } from 'prom-client'
 * import { RateLimiter, presets } from 'halt'
 * import { PrometheusTelemetry } from 'halt/prometheus'
 * const limiter = new RateLimiter({ policy: presets.PUBLIC_API, telemetry: new PrometheusTelemetry() })
 * app.get('/metrics', async (_req, res) => res.type(register.contentType).send(await register.metrics()))
 */
export class PrometheusTelemetry implements Telemetry {
  private readonly decisions: Counter
  private readonly near: Counter
  private readonly errors: Counter
  private readonly duration: Histogram

  constructor(options: PrometheusTelemetryOptions = {}) {
    if (options === null || typeof options !== 'object') throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'PrometheusTelemetry: options must be an object.')
    const prefix = options.prefix ?? 'halt_'
    if (typeof prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
      throw new HaltConfigError(
        'HALT_INVALID_TELEMETRY',
        `PrometheusTelemetry: prefix must be a valid start of a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${String(prefix)}.`,
      )
    }
    const buckets = options.buckets ?? LATENCY_BUCKETS_MS.map((ms) => ms / 1000)
    if (
      !Array.isArray(buckets) ||
      buckets.length === 0 ||
      buckets.some((b, i) => typeof b !== 'number' || !(b > 0) || (i > 0 && b <= (buckets[i - 1] as number)))
    ) {
      throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'PrometheusTelemetry: buckets must be increasing positive seconds, e.g. [0.001, 0.01, 0.1].')
    }
    const client = options.client ?? loadPeer<PrometheusClient>('prom-client', 'PrometheusTelemetry', 'new PrometheusTelemetry({ client })')
    const registry = options.registry ?? client.register
    if (registry === null || typeof registry !== 'object' || typeof registry.getSingleMetric !== 'function') {
      throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'PrometheusTelemetry: registry must be a prom-client Registry (new Registry() or register).')
    }
    const metric = <T>(kind: 'Counter' | 'Histogram', name: string, help: string, labelNames: string[], extra?: { buckets: number[] }): T => {
      const full = prefix + name
      const known = registry.getSingleMetric(full)
      if (known !== undefined) return known as T
      const make = client[kind] as unknown as new (config: MetricConfig) => T
      return new make({ name: full, help, labelNames, registers: [registry], ...extra })
    }
    this.decisions = metric('Counter', 'decisions_total', 'Rate-limit decisions, by policy, outcome, reason and shadow mode.', [
      'policy',
      'outcome',
      'reason',
      'shadow',
    ])
    this.near = metric('Counter', 'near_limit_total', 'Checks that brought an identity close to its limit.', ['policy', 'shadow'])
    this.errors = metric('Counter', 'store_errors_total', 'Store calls that failed or timed out (the failure policy answered).', [
      'policy',
      'operation',
      'action',
    ])
    this.duration = metric('Histogram', 'check_duration_seconds', 'Time of a rate-limit check, the store call included.', ['policy'], {
      buckets: [...buckets],
    })
  }

  onCheck(e: DecisionEvent): void {
    const d = e.decision
    this.decisions.inc({ policy: d.policy, outcome: outcomeOf(d), reason: reasonOf(d), shadow: e.shadow === true ? 'true' : 'false' })
    if (e.durationMs !== undefined) this.duration.observe({ policy: d.policy }, e.durationMs / 1000)
  }

  onNearLimit(e: DecisionEvent): void {
    this.near.inc({ policy: e.decision.policy, shadow: e.shadow === true ? 'true' : 'false' })
  }

  onError(e: StoreErrorEvent): void {
    this.errors.inc({ policy: e.policy, operation: e.operation, action: e.action })
  }
}
