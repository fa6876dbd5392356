// Traffic traces: the types, parsing from CSV or JSON lines (with line-numbered errors), and writing as CSV.

/** One request of a trace. */
export interface TraceRequest {
  /** When it arrived: milliseconds since the Unix epoch (or since any origin you like). */
  t: number
  /** The identity it is limited under (`ip:203.0.113.7`, `user:42`); one shared key when absent. */
  key?: string
  /** Units it consumes; the policy's `cost` (default 1) when absent. */
  cost?: number
}

/** A list of requests, with the span it covers and a name for the chart. */
export interface Trace {
  requests: TraceRequest[]
  /**
   * Start of the span the chart shows (ms). Default: 0 for a trace in relative time (every
   * timestamp from 0 to 1e11 ms), else the first request rounded down to a round time.
   */
  from?: number
  /** End of the span (ms, exclusive). Default: after the last request, rounded up. */
  to?: number
  /** Shown in the chart's title line, e.g. the file name. */
  name?: string
}

/** The key of requests that name none. */
export const DEFAULT_KEY = '*'

/**
 * Numbers below this are seconds, numbers at or above it milliseconds
 * (1e11 ms is March 1973; 1e11 s is the year 5138).
 */
export const SECONDS_BELOW = 1e11

export interface ParseTraceOptions {
  /** Names the input in error messages (`access.csv:17: ...`). Default `trace`. */
  source?: string
  /** `csv`, `jsonl`, or `auto` (default): JSON lines when the first record starts with `{` or `[`. */
  format?: 'auto' | 'csv' | 'jsonl'
  /**
   * How numeric timestamps are read. `auto` (default): decided by the first one, below 1e11
   * seconds, else milliseconds, and every later one must agree. `s` or `ms` force the unit
   * (e.g. `ms` for a trace of small relative millisecond offsets).
   */
  timeUnit?: 'auto' | 's' | 'ms'
}

const DOCS = 'docs/errors.md#halt_invalid_trace'

/**
 * A trace that cannot be read. The message names the input, the line and the problem:
 * `access.csv:17: timestamp "abc" is not a number or an ISO 8601 date (...)`.
 */
export class TraceError extends Error {
  readonly code = 'HALT_INVALID_TRACE'
  readonly docs = DOCS
  /** The input's name, as given to `parseTrace`. */
  readonly source: string
  /** 1-based line number; 0 when the problem is not on one line. */
  readonly line: number
  /** What is wrong, without the location. */
  readonly problem: string
  constructor(source: string, line: number, problem: string) {
    super(line > 0 ? `${source}:${line}: ${problem}` : `${source}: ${problem}`)
    this.name = 'TraceError'
    this.source = source
    this.line = line
    this.problem = problem
  }
}

const TIME_COLUMNS = ['timestamp', 'time', 'ts', 't', '@timestamp', 'date', 'datetime', 'time_iso8601', 'msec']
const KEY_COLUMNS = ['key', 'client', 'client_id', 'ip', 'client_ip', 'remote_addr', 'id', 'user', 'user_id', 'identity', 'api_key']
const COST_COLUMNS = ['cost', 'weight', 'units']

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?$/
const CLF = /^\[?(\d{2})\/([A-Za-z]{3})\/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s+([+-])(\d{2})(\d{2})\]?$/
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

function utc(y: number, mo: number, d: number, h: number, mi: number, s: number, frac: string | undefined): number | undefined {
  const ms = frac === undefined ? 0 : Math.round(Number(`0.${frac}`) * 1000)
  const t = Date.UTC(y, mo - 1, d, h, mi, s)
  const back = new Date(t)
  // Date.UTC rolls Feb 30 over to March; refuse instead.
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return undefined
  return t + ms
}

/** An ISO 8601 date-time (no offset means UTC) or an access-log date (`10/Oct/2023:13:55:36 +0000`) in ms. */
export function parseDate(text: string): number | undefined {
  let m = ISO.exec(text)
  if (m) {
    const t = utc(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0), m[7])
    if (t === undefined) return undefined
    const offset = m[9] === undefined ? 0 : (Number(m[10]) * 60 + Number(m[11] ?? 0)) * (m[9] === '-' ? -1 : 1)
    return t - offset * 60_000
  }
  m = CLF.exec(text)
  if (m) {
    const month = MONTHS.indexOf((m[2] as string).toLowerCase()) + 1
    if (month === 0) return undefined
    const t = utc(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]), m[7])
    if (t === undefined) return undefined
    const offset = (Number(m[9]) * 60 + Number(m[10])) * (m[8] === '-' ? -1 : 1)
    return t - offset * 60_000
  }
  return undefined
}

/** Reads timestamps of one input, keeping the unit of numeric ones consistent. */
class Clock {
  private readonly forced: boolean
  private unit: 's' | 'ms' | undefined
  private firstLine = 0
  private firstValue = ''
  constructor(
    private readonly source: string,
    timeUnit: 'auto' | 's' | 'ms',
  ) {
    this.forced = timeUnit !== 'auto'
    this.unit = timeUnit === 'auto' ? undefined : timeUnit
  }

  read(value: unknown, line: number): number {
    if (typeof value === 'number') return this.numeric(value, String(value), line)
    if (typeof value !== 'string') throw new TraceError(this.source, line, `timestamp ${JSON.stringify(value)} is not a number or a date string`)
    const text = value.trim()
    if (text === '') throw new TraceError(this.source, line, 'missing timestamp')
    if (NUMBER.test(text)) return this.numeric(Number(text), text, line)
    const t = parseDate(text)
    if (t === undefined) {
      throw new TraceError(
        this.source,
        line,
        `timestamp "${text}" is not a number or an ISO 8601 date (write epoch seconds like 1700000000.25, epoch ms like 1700000000250, or a date like 2024-05-01T12:00:00.250Z)`,
      )
    }
    return t
  }

  private numeric(v: number, text: string, line: number): number {
    if (!Number.isFinite(v)) throw new TraceError(this.source, line, `timestamp "${text}" is not a finite number`)
    const unit = Math.abs(v) < SECONDS_BELOW ? 's' : 'ms'
    if (this.unit === undefined) {
      this.unit = unit
      this.firstLine = line
      this.firstValue = text
    } else if (unit !== this.unit && !this.forced) {
      const name = (u: string) => (u === 's' ? 'seconds' : 'milliseconds')
      throw new TraceError(
        this.source,
        line,
        `timestamp ${text} reads as ${name(unit)} but line ${this.firstLine} (${this.firstValue}) was read as ${name(this.unit)}; use one unit per file (numbers below 1e11 are seconds), or force one with --time-unit s|ms`,
      )
    }
    return Math.round(this.unit === 's' ? v * 1000 : v)
  }
}

function readCost(source: string, value: unknown, line: number): number | undefined {
  if (value === undefined || value === null || value === '') return undefined
  const v = typeof value === 'number' ? value : typeof value === 'string' && NUMBER.test(value.trim()) ? Number(value) : Number.NaN
  if (!Number.isFinite(v) || v < 0) throw new TraceError(source, line, `cost ${JSON.stringify(value)} is not a number >= 0`)
  return v
}

function readKey(source: string, value: unknown, line: number): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'number') return String(value)
  if (typeof value !== 'string') throw new TraceError(source, line, `key ${JSON.stringify(value)} is not a string`)
  const key = value.trim()
  return key === '' ? undefined : key
}

/** Split one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote). */
function csvFields(text: string, source: string, line: number): string[] {
  const fields: string[] = []
  let i = 0
  for (;;) {
    let field = ''
    while (text[i] === ' ' || text[i] === '\t') i++
    if (text[i] === '"') {
      i++
      for (;;) {
        if (i >= text.length) throw new TraceError(source, line, 'unterminated quoted field (a " opens it and none closes it)')
        const c = text[i++] as string
        if (c === '"') {
          if (text[i] === '"') {
            field += '"'
            i++
          } else break
        } else field += c
      }
      while (text[i] === ' ' || text[i] === '\t') i++
      if (i < text.length && text[i] !== ',') throw new TraceError(source, line, `unexpected text after a quoted field: ${JSON.stringify(text.slice(i))}`)
    } else {
      const comma = text.indexOf(',', i)
      const end = comma < 0 ? text.length : comma
      field = text.slice(i, end).trim()
      i = end
    }
    fields.push(field)
    if (i >= text.length) return fields
    i++ // the comma
  }
}

function* lines(text: string): Generator<[number, string]> {
  let start = 0
  let n = 0
  if (text.charCodeAt(0) === 0xfeff) start = 1 // byte order mark
  while (start <= text.length) {
    let end = text.indexOf('\n', start)
    if (end < 0) end = text.length
    n++
    let line = text.slice(start, end)
    if (line.endsWith('\r')) line = line.slice(0, -1)
    const trimmed = line.trim()
    if (trimmed !== '' && !trimmed.startsWith('#')) yield [n, line]
    start = end + 1
  }
}

/**
 * Parse a trace from CSV or JSON lines.
 *
 * CSV: `timestamp[,key][,cost]` per line, or any columns under a header line that names
 * them (`timestamp`/`time`/`ts`, `key`/`client`/`ip`/`user`, `cost`/`weight`; others are ignored).
 * JSON lines: `{"timestamp": ..., "key": ..., "cost": ...}` (same names) or `[timestamp, key, cost]`.
 * Blank lines and lines starting with `#` are skipped.
 *
 * Timestamps: epoch seconds (`1700000000.25`), epoch milliseconds (`1700000000250`), relative
 * seconds (`0`, `12.5`), or an ISO 8601 date (`2024-05-01T12:00:00.250Z`; no offset means UTC).
 * A number below 1e11 is seconds, else milliseconds (see `timeUnit`). Rounded to the millisecond.
 *
 * @throws TraceError naming the line and the problem.
 * @example
 * parseTrace('0,alice\n0.5,bob,2\n', { source: 'mini.csv' }).requests
 * // [{ t: 0, key: 'alice' }, { t: 500, key: 'bob', cost: 2 }]
 */
export function parseTrace(text: string, options: ParseTraceOptions = {}): Trace {
  const source = options.source ?? 'trace'
  const clock = new Clock(source, options.timeUnit ?? 'auto')
  const requests: TraceRequest[] = []
  let format = options.format ?? 'auto'
  let columns: { t: number; key: number; cost: number; count: number } | undefined
  for (const [n, line] of lines(text)) {
    if (format === 'auto') format = /^\s*[[{]/.test(line) ? 'jsonl' : 'csv'
    if (format === 'jsonl') {
      requests.push(jsonRecord(source, clock, line, n))
      continue
    }
    const fields = csvFields(line, source, n)
    if (columns === undefined) {
      columns = header(fields)
      if (columns !== undefined) continue
      columns = { t: 0, key: 1, cost: 2, count: 3 }
    }
    if (columns.count === 3 && fields.length > 3) {
      throw new TraceError(
        source,
        n,
        `${fields.length} columns, expected at most 3 (timestamp,key,cost); to read other columns, start the file with a header line naming them, e.g. timestamp,ip,status`,
      )
    }
    const req: TraceRequest = { t: clock.read(fields[columns.t] ?? '', n) }
    const key = columns.key < 0 ? undefined : readKey(source, fields[columns.key], n)
    if (key !== undefined) req.key = key
    const cost = columns.cost < 0 ? undefined : readCost(source, fields[columns.cost], n)
    if (cost !== undefined) req.cost = cost
    requests.push(req)
  }
  if (requests.length === 0) throw new TraceError(source, 0, 'no requests: every line is blank or a comment')
  return { requests, name: source }
}

/** A header line names a timestamp column and does not start with a timestamp. */
function header(fields: string[]): { t: number; key: number; cost: number; count: number } | undefined {
  const names = fields.map((f) => f.toLowerCase())
  const t = names.findIndex((f) => TIME_COLUMNS.includes(f))
  if (t < 0 || NUMBER.test(fields[0] ?? '') || parseDate(fields[0] ?? '') !== undefined) return undefined
  return {
    t,
    key: names.findIndex((f) => KEY_COLUMNS.includes(f)),
    cost: names.findIndex((f) => COST_COLUMNS.includes(f)),
    count: fields.length,
  }
}

function pick(o: Record<string, unknown>, names: string[]): unknown {
  for (const n of names) if (n in o) return o[n]
  return undefined
}

function jsonRecord(source: string, clock: Clock, line: string, n: number): TraceRequest {
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch (e) {
    throw new TraceError(source, n, `not valid JSON (${(e as Error).message})`)
  }
  let t: unknown
  let key: unknown
  let cost: unknown
  if (Array.isArray(v)) {
    ;[t, key, cost] = v
  } else if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    t = pick(o, TIME_COLUMNS)
    key = pick(o, KEY_COLUMNS)
    cost = pick(o, COST_COLUMNS)
  } else {
    throw new TraceError(source, n, 'expected a JSON object like {"timestamp": 1700000000, "key": "ip:1", "cost": 1} or an array [timestamp, key, cost]')
  }
  if (t === undefined || t === null) throw new TraceError(source, n, 'missing timestamp (name it timestamp, time or ts)')
  const req: TraceRequest = { t: clock.read(t, n) }
  const k = readKey(source, key, n)
  if (k !== undefined) req.key = k
  const c = readCost(source, cost, n)
  if (c !== undefined) req.cost = c
  return req
}

/** Write a trace as CSV (`timestamp,key,cost`, ISO 8601 timestamps), which `parseTrace` reads back. */
export function formatTraceCsv(trace: Trace | readonly TraceRequest[], comment?: string): string {
  const requests = Array.isArray(trace) ? trace : (trace as Trace).requests
  const out: string[] = []
  if (comment !== undefined) for (const line of comment.split('\n')) out.push(`# ${line}`)
  out.push('timestamp,key,cost')
  for (const r of requests) {
    const key = r.key === undefined ? '' : /[",\n\r]|^\s|\s$/.test(r.key) ? `"${r.key.replace(/"/g, '""')}"` : r.key
    const row = `${new Date(r.t).toISOString()},${key},${r.cost ?? ''}`
    out.push(row.replace(/,+$/, ''))
  }
  return `${out.join('\n')}\n`
}
