// TelemetryHub: the one place a limiter's events reach its telemetry sinks. Validates the sinks once; a hook that throws or rejects never reaches the request.
import { HaltConfigError } from '../core/errors.js'
import type { RequestView } from '../http/request.js'
import { WarningCode, type WarningCodeName } from '../http/warnings.js'
import type { DecisionEvent, StoreErrorEvent, Telemetry, TelemetryOption } from './types.js'

type HookName = 'onCheck' | 'onAllowed' | 'onBlocked' | 'onNearLimit' | 'onError'
const HOOKS: readonly HookName[] = ['onCheck', 'onAllowed', 'onBlocked', 'onNearLimit', 'onError']
/** Hook names of earlier versions, and what replaced them. */
const RENAMED: Record<string, HookName> = { onDecision: 'onCheck', onStoreError: 'onError' }

interface Hook {
  sink: Telemetry
  fn: (event: never) => unknown
  name: HookName
}

/** Ids made up for requests without a usable `x-request-id`: every event of one request carries the same one. */
const madeUp = new WeakMap<RequestView, string>()

/**
 * The request's `x-request-id` when it is 1-64 printable ASCII characters without spaces, else a random id made up
 * for it (the same one for every limiter, quota and event of that request).
 */
export function requestIdOf(req: RequestView): string {
  let id: string | undefined
  try {
    id = req.header('x-request-id')
  } catch {
    id = undefined
  }
  if (typeof id === 'string' && id.length > 0 && id.length <= 64) {
    let ok = true
    for (let i = 0; i < id.length && ok; i++) {
      const c = id.charCodeAt(i)
      ok = c > 32 && c < 127
    }
    if (ok) return id
  }
  let made = madeUp.get(req)
  if (made === undefined) {
    made = ((Math.random() * 0x100000000) >>> 0).toString(16).padStart(8, '0')
    madeUp.set(req, made)
  }
  return made
}

/**
 * Dispatches a limiter's events to one or several `Telemetry` sinks, in order.
 * Every call is guarded: a hook that throws (or whose promise rejects) is
 * reported once through `warn` and the next hook still runs.
 */
export class TelemetryHub {
  private readonly checks: Hook[] = []
  private readonly allowed: Hook[] = []
  private readonly blocked: Hook[] = []
  private readonly near: Hook[] = []
  private readonly errors: Hook[] = []

  constructor(
    option: TelemetryOption,
    private readonly warn: (code: WarningCodeName, message: string) => void,
  ) {
    const sinks = Array.isArray(option) ? (option as readonly Telemetry[]) : [option as Telemetry]
    const lists: Record<HookName, Hook[]> = {
      onCheck: this.checks,
      onAllowed: this.allowed,
      onBlocked: this.blocked,
      onNearLimit: this.near,
      onError: this.errors,
    }
    sinks.forEach((sink, i) => {
      const where = Array.isArray(option) ? `telemetry[${i}]` : 'telemetry'
      if (sink === null || typeof sink !== 'object') {
        throw invalid(`${where} must be an object with hooks such as onCheck or onBlocked (or an exporter like new LoggingTelemetry()), got ${String(sink)}.`)
      }
      const record = sink as unknown as Record<string, unknown>
      for (const [old, now] of Object.entries(RENAMED)) {
        if (record[old] !== undefined) throw invalid(`${where}.${old} was renamed: use ${now}.`)
      }
      let hooks = 0
      for (const name of HOOKS) {
        const fn = record[name]
        if (fn === undefined) continue
        if (typeof fn !== 'function') throw invalid(`${where}.${name} must be a function (event) => void, got ${typeof fn}.`)
        lists[name].push({ sink, fn: fn as (event: never) => unknown, name })
        hooks++
      }
      if (hooks === 0) throw invalid(`${where} has none of the hooks ${HOOKS.join(', ')}.`)
    })
  }

  /** Whether any sink listens to near-limit signals (the limiter skips computing them otherwise). */
  get hasNearLimit(): boolean {
    return this.near.length > 0
  }

  /** `onCheck`, then `onAllowed` or `onBlocked`. */
  decision(event: DecisionEvent): void {
    this.run(this.checks, event)
    this.run(event.decision.allowed ? this.allowed : this.blocked, event)
  }

  nearLimit(event: DecisionEvent): void {
    this.run(this.near, event)
  }

  error(event: StoreErrorEvent): void {
    this.run(this.errors, event)
  }

  private run(hooks: Hook[], event: DecisionEvent | StoreErrorEvent): void {
    for (let i = 0; i < hooks.length; i++) {
      const h = hooks[i] as Hook
      try {
        const r = h.fn.call(h.sink, event as never) as { then?: unknown } | undefined
        if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
          ;(r as Promise<unknown>).then(undefined, (e: unknown) => this.failed(h, e))
        }
      } catch (e) {
        this.failed(h, e)
      }
    }
  }

  private failed(h: Hook, e: unknown): void {
    const what = e instanceof Error ? e.message : String(e)
    this.warn(
      WarningCode.TELEMETRY_HOOK_FAILED,
      `the telemetry hook ${h.name} failed (${what.slice(0, 200)}); requests are served as if it had succeeded. This is reported once.`,
    )
  }
}

function invalid(message: string): HaltConfigError {
  return new HaltConfigError('HALT_INVALID_TELEMETRY', `RateLimiter: ${message}`)
}
