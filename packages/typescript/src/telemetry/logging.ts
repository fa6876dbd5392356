// LoggingTelemetry: one logfmt line per decision (`12:41:01 req_id=8f1 key=ip:203.0.113.7 check=pass remaining=3`) to any logger with info/warn.
import { HaltConfigError } from '../core/errors.js'
import type { DecisionEvent, StoreErrorEvent, Telemetry } from './types.js'

/** Anything with `info` and `warn` taking a string: `console`, pino, winston, bunyan... */
export interface Logger {
  info(message: string): void
  warn(message: string): void
}

export interface LoggingTelemetryOptions {
  /** Default `console`. Admissions go to `info`; rejections, near-limit signals and store errors to `warn`. */
  logger?: Logger
  /** Log admitted requests (`check=pass`, `check=exempt`) too. Default true; false keeps only rejections and warnings. */
  logAllowed?: boolean
  /** The time printed at the start of each line: `'local'` (default) or `'utc'`. */
  timeZone?: 'local' | 'utc'
  /** Epoch milliseconds for the timestamp. Default `Date.now`. */
  clock?: () => number
}

/**
 * Logs one line per decision, in logfmt after a time of day:
 *
 * ```
 * 12:41:01 req_id=8f1 key=ip:203.0.113.7 check=pass remaining=119
 * 12:41:03 req_id=2c7 key=ip:203.0.113.7 check=limit remaining=0 retry_after=1
 * 12:41:09 req_id=a40 key=ip:127.0.0.1 check=exempt
 * ```
 *
 * `check` is `pass`, `exempt`, or the reason of a rejection (`limit`, `cooldown`,
 * `penalty`, `store_error`, `cost_exceeds_capacity`). Decisions of a policy in
 * shadow mode end with `shadow=true`; those taken by the store failure policy
 * with `store_error=<open|closed|fallback>`. API keys appear only hashed (as in
 * the storage key); a value with spaces or quotes is written as a JSON string.
 *
 * @example
 * new RateLimiter({ policy, telemetry: new LoggingTelemetry({ logger: pino() }) })
 */
export class LoggingTelemetry implements Telemetry {
  private readonly logger: Logger
  private readonly logAllowed: boolean
  private readonly utc: boolean
  private readonly clock: () => number
  private second = Number.NaN
  private stamp = ''

  constructor(options: LoggingTelemetryOptions = {}) {
    if (options === null || typeof options !== 'object') throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'LoggingTelemetry: options must be an object.')
    const logger = options.logger === undefined ? console : options.logger
    if (logger === null || typeof logger !== 'object' || typeof logger.info !== 'function' || typeof logger.warn !== 'function') {
      throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'LoggingTelemetry: logger must have info(message) and warn(message), like console or pino().')
    }
    if (options.timeZone !== undefined && options.timeZone !== 'local' && options.timeZone !== 'utc') {
      throw new HaltConfigError('HALT_INVALID_TELEMETRY', `LoggingTelemetry: timeZone is 'local' or 'utc', got ${String(options.timeZone)}.`)
    }
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new HaltConfigError('HALT_INVALID_TELEMETRY', 'LoggingTelemetry: clock must be a function returning epoch milliseconds, like Date.now.')
    }
    this.logger = logger
    this.logAllowed = options.logAllowed ?? true
    this.utc = options.timeZone === 'utc'
    this.clock = options.clock ?? Date.now
  }

  onCheck(e: DecisionEvent): void {
    const d = e.decision
    if (d.allowed && !this.logAllowed) return
    let line = this.prefix(e)
    if (d.reason === 'exempt') line += ' check=exempt'
    else if (d.allowed) line += ` check=pass remaining=${d.remaining}`
    else line += ` check=${d.reason ?? 'limit'} remaining=${d.remaining} retry_after=${d.retryAfter}`
    if (e.shadow === true) line += ' shadow=true'
    if (e.storeError !== undefined) line += ` store_error=${e.storeError}`
    if (d.allowed) this.logger.info(line)
    else this.logger.warn(line)
  }

  onNearLimit(e: DecisionEvent): void {
    const d = e.decision
    this.logger.warn(
      `${this.prefix(e)} near_limit policy=${value(d.policy)} remaining=${d.remaining} limit=${d.limit}${e.shadow === true ? ' shadow=true' : ''}`,
    )
  }

  onError(e: StoreErrorEvent): void {
    const msg = e.error instanceof Error ? e.error.message : String(e.error)
    this.logger.warn(
      `${this.time()} store_error policy=${value(e.policy)} key=${value(e.key)} operation=${e.operation} action=${e.action} error=${value(msg.slice(0, 300))}`,
    )
  }

  private prefix(e: DecisionEvent): string {
    return `${this.time()} req_id=${e.requestId === undefined ? '-' : value(e.requestId)} key=${e.key === '' ? '-' : value(e.key)}`
  }

  /** HH:MM:SS, formatted once per second. */
  private time(): string {
    const ms = this.clock()
    const second = Math.floor(ms / 1000)
    if (second === this.second) return this.stamp
    const t = new Date(ms)
    const h = this.utc ? t.getUTCHours() : t.getHours()
    const m = this.utc ? t.getUTCMinutes() : t.getMinutes()
    const s = this.utc ? t.getUTCSeconds() : t.getSeconds()
    this.second = second
    this.stamp = `${two(h)}:${two(m)}:${two(s)}`
    return this.stamp
  }
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n)
}

/** A logfmt value: bare when it is printable ASCII without spaces, quotes or `=`; else a JSON string (no line breaks can sneak in). */
function value(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i)
    if (c <= 32 || c >= 127 || c === 34 || c === 61 || c === 92) return JSON.stringify(v)
  }
  return v.length === 0 ? '""' : v
}
