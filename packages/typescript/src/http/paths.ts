// Path exemptions: exact paths and `/prefix/*` patterns, matched only on canonical paths so no crafted path slips through.
import { pathOf } from './request.js'

/** Health-check paths exempt by default (`exemptHealthChecks: true`). */
export const HEALTH_CHECK_PATHS: readonly string[] = Object.freeze(['/health', '/ping', '/ready', '/healthz', '/livez'])

/**
 * Whether `path` is canonical: only unreserved and sub-delim characters, no percent
 * escapes, no `;` parameters, no backslashes, no empty, `.` or `..` segments.
 * Routers disagree on how to normalise anything else (decode? fold case? strip
 * `;x`? resolve `..`?), so an exemption never covers a path that needs it.
 *
 * @example
 * isCanonicalPath('/internal/jobs') // true
 * isCanonicalPath('/internal/../admin') // false
 */
export function isCanonicalPath(path: string): boolean {
  const n = path.length
  if (n === 0 || path.charCodeAt(0) !== 47) return false
  let segStart = 1
  for (let i = 1; i <= n; i++) {
    const c = i < n ? path.charCodeAt(i) : 47
    if (c === 47) {
      const len = i - segStart
      if (len === 0 && i < n) return false // '//'
      if (len === 1 && path.charCodeAt(segStart) === 46) return false // '/./'
      if (len === 2 && path.charCodeAt(segStart) === 46 && path.charCodeAt(segStart + 1) === 46) return false // '/../'
      segStart = i + 1
      continue
    }
    const ok =
      (c >= 97 && c <= 122) ||
      (c >= 65 && c <= 90) ||
      (c >= 48 && c <= 57) ||
      c === 45 || // -
      c === 46 || // .
      c === 95 || // _
      c === 126 || // ~
      c === 33 || // !
      c === 36 || // $
      c === 38 || // &
      c === 39 || // '
      c === 40 || // (
      c === 41 || // )
      c === 42 || // *
      c === 43 || // +
      c === 44 || // ,
      c === 61 || // =
      c === 58 || // :
      c === 64 // @
    if (!ok) return false
  }
  return true
}

/**
 * Compiled path exemptions. A pattern is an exact path (`/status`) or a prefix
 * (`/internal/*`, matching `/internal` and everything below it). Matching is
 * case-sensitive and allows one trailing slash.
 */
export class PathExemptions {
  private readonly exact = new Set<string>()
  private readonly prefixes: string[] = []

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      if (p.endsWith('/*')) this.prefixes.push(p.slice(0, -2))
      else this.exact.add(p)
    }
  }

  get size(): number {
    return this.exact.size + this.prefixes.length
  }

  /** Whether the request path (query string ignored) is exempt. */
  matches(rawPath: string): boolean {
    if (typeof rawPath !== 'string') return false
    const path = pathOf(rawPath)
    // Exact entries are canonical by construction, so a hit needs no further check.
    if (this.exact.has(path)) return true
    const n = path.length
    if (n > 1 && path.charCodeAt(n - 1) === 47 && path.charCodeAt(n - 2) !== 47 && this.exact.has(path.slice(0, -1))) return true
    if (this.prefixes.length === 0) return false
    for (const prefix of this.prefixes) {
      if (path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47)) return isCanonicalPath(path)
    }
    return false
  }
}

/** Whether `p` is a valid exemption pattern: a canonical path, optionally ending in `/*`. */
export function validPathPattern(p: string): boolean {
  const base = p.endsWith('/*') ? p.slice(0, -2) : p
  if (base === '' && p === '/*') return true
  return base.length > 0 && isCanonicalPath(base) && (base === '/' || !base.endsWith('/'))
}
