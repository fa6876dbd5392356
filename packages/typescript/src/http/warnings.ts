// Soft warnings: problems noticed while serving (never thrown), reported once per limiter and code, each one silenceable.
import { HaltConfigError } from '../core/errors.js'

/**
 * Every warning code. Each has a section in docs/errors.md.
 *
 * @example
 * new RateLimiter({ policy, validations: { [WarningCode.UNCONFIGURED_PROXY]: false } })
 */
export const WarningCode = {
  /** A private peer sends X-Forwarded-For / Forwarded but no `trustedProxies` are configured. */
  UNCONFIGURED_PROXY: 'HALT_UNCONFIGURED_PROXY',
  /** The adapter could not tell the client's address; such requests share one key. */
  NO_CLIENT_ADDRESS: 'HALT_NO_CLIENT_ADDRESS',
  /** The `policy` function threw or returned an invalid policy; the default policy was used. */
  POLICY_RESOLVER_FAILED: 'HALT_POLICY_RESOLVER_FAILED',
  /** The `cost` function threw or returned something other than a finite number >= 0; the policy's cost was used. */
  INVALID_REQUEST_COST: 'HALT_INVALID_REQUEST_COST',
  /** `keyExtractor`, `userId` or `skip` threw; the request was treated as having no identity (or not skipped). */
  CALLBACK_FAILED: 'HALT_CALLBACK_FAILED',
  /** The `api_key` strategy runs on a shared store with a per-process random secret. */
  API_KEY_SECRET_NOT_SHARED: 'HALT_API_KEY_SECRET_NOT_SHARED',
  /** A telemetry hook threw or its promise rejected; the request was served all the same. */
  TELEMETRY_HOOK_FAILED: 'HALT_TELEMETRY_HOOK_FAILED',
} as const
export type WarningCodeName = (typeof WarningCode)[keyof typeof WarningCode]

/** A warning as passed to the `onWarning` option. */
export interface HaltWarning {
  code: WarningCodeName
  message: string
}

const CODES = Object.values(WarningCode) as string[]

/** Reports each code once; `validations` turns all (false) or some ({ HALT_X: false }) off. */
export class Warnings {
  private readonly seen = new Set<string>()
  private readonly off: Set<string>
  private readonly sink: (w: HaltWarning) => void

  constructor(onWarning: ((w: HaltWarning) => void) | undefined, validations: boolean | Partial<Record<WarningCodeName, boolean>> | undefined) {
    if (onWarning !== undefined && typeof onWarning !== 'function') {
      throw new HaltConfigError('HALT_INVALID_CALLBACK', `onWarning must be a function (warning) => void, got ${typeof onWarning}.`)
    }
    this.sink = onWarning ?? ((w) => console.warn(`[halt] ${w.code}: ${w.message}`))
    if (validations === undefined || validations === true) this.off = new Set()
    else if (validations === false) this.off = new Set(CODES)
    else if (typeof validations === 'object' && validations !== null) {
      for (const k of Object.keys(validations)) {
        if (!CODES.includes(k)) {
          throw new HaltConfigError('HALT_INVALID_VALIDATIONS', `validations: unknown warning code '${k}'. Fix: use one of ${CODES.join(', ')}.`)
        }
      }
      this.off = new Set(Object.entries(validations).flatMap(([k, v]) => (v === false ? [k] : [])))
    } else {
      throw new HaltConfigError(
        'HALT_INVALID_VALIDATIONS',
        `validations must be true, false or { HALT_UNCONFIGURED_PROXY: false, ... }, got ${String(validations)}.`,
      )
    }
  }

  /** Whether `code` is still worth checking (enabled and not yet reported): lets callers skip the detection work. */
  pending(code: WarningCodeName): boolean {
    return !this.seen.has(code) && !this.off.has(code)
  }

  warn(code: WarningCodeName, message: string): void {
    if (!this.pending(code)) return
    this.seen.add(code)
    try {
      this.sink({ code, message })
    } catch {
      // A throwing logger must not turn a request into a 500.
    }
  }
}
