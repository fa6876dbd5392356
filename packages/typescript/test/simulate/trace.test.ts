// parseTrace(): CSV and JSON lines, timestamp units and dates, and errors that name the line and the problem.
import { describe, expect, it } from 'vitest'
import { formatTraceCsv, parseDate, parseTrace, TraceError } from '../../src/simulate/index.js'

const T = Date.UTC(2024, 4, 1, 12, 0, 0) // 2024-05-01T12:00:00Z = 1714564800 s

function problem(text: string, options = {}): { line: number; problem: string; message: string } {
  try {
    parseTrace(text, { source: 'access.csv', ...options })
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError)
    const err = e as TraceError
    expect(err.code).toBe('HALT_INVALID_TRACE')
    return { line: err.line, problem: err.problem, message: err.message }
  }
  throw new Error('expected a TraceError')
}

describe('CSV', () => {
  it('reads timestamp[,key][,cost], skipping blank lines and # comments', () => {
    const t = parseTrace('# a comment\n0\n\n1.5,alice\n2,bob,3\n2.25,,2\n', { source: 'x.csv' })
    expect(t).toEqual({
      name: 'x.csv',
      requests: [{ t: 0 }, { t: 1500, key: 'alice' }, { t: 2000, key: 'bob', cost: 3 }, { t: 2250, cost: 2 }],
    })
  })

  it('reads the columns a header names, in any order, ignoring the others', () => {
    const csv = 'status,ip,ts,weight\n200,10.0.0.1,1714564800,1\n429,10.0.0.2,1714564801.5,\n'
    expect(parseTrace(csv).requests).toEqual([
      { t: T, key: '10.0.0.1', cost: 1 },
      { t: T + 1500, key: '10.0.0.2' },
    ])
  })

  it('handles quoted keys, CRLF line ends and a byte order mark', () => {
    const csv = '\uFEFFtimestamp,key\r\n1,"user, ""quoted"""\r\n2,plain\r\n'
    expect(parseTrace(csv).requests).toEqual([
      { t: 1000, key: 'user, "quoted"' },
      { t: 2000, key: 'plain' },
    ])
  })

  it('round-trips through formatTraceCsv', () => {
    const requests = [{ t: T }, { t: T + 1, key: 'a,b' }, { t: T + 2, key: 'c', cost: 2.5 }, { t: T + 3, cost: 0 }]
    const csv = formatTraceCsv(requests, 'two\nlines')
    expect(csv.split('\n').slice(0, 4)).toEqual(['# two', '# lines', 'timestamp,key,cost', '2024-05-01T12:00:00.000Z'])
    expect(parseTrace(csv).requests).toEqual(requests)
  })
})

describe('timestamps', () => {
  it('reads numbers below 1e11 as seconds, others as milliseconds, rounded to the millisecond', () => {
    expect(parseTrace('1714564800.1234').requests[0]?.t).toBe(T + 123)
    expect(parseTrace('1714564800123').requests[0]?.t).toBe(T + 123)
    expect(parseTrace('0.0005').requests[0]?.t).toBe(1) // 0.5 ms rounds up
  })

  it('reads ISO 8601 (no offset is UTC), with offsets and fractions, and access-log dates', () => {
    expect(parseDate('2024-05-01T12:00:00Z')).toBe(T)
    expect(parseDate('2024-05-01T12:00:00')).toBe(T)
    expect(parseDate('2024-05-01 12:00:00.250')).toBe(T + 250)
    expect(parseDate('2024-05-01T14:00:00+02:00')).toBe(T)
    expect(parseDate('2024-05-01T07:30:00-0430')).toBe(T)
    expect(parseDate('2024-05-01')).toBe(Date.UTC(2024, 4, 1))
    expect(parseDate('01/May/2024:14:00:00 +0200')).toBe(T)
    expect(parseDate('[01/May/2024:12:00:00.5 +0000]')).toBe(T + 500)
    expect(parseDate('2024-02-30T00:00:00Z')).toBeUndefined()
    expect(parseDate('2024-05-01T24:00:00Z')).toBeUndefined()
    expect(parseDate('yesterday')).toBeUndefined()
  })

  it('--time-unit forces the unit of numbers', () => {
    expect(parseTrace('0\n100\n250', { timeUnit: 'ms' }).requests.map((r) => r.t)).toEqual([0, 100, 250])
    expect(parseTrace('1714564800000', { timeUnit: 's' }).requests[0]?.t).toBe(1714564800000 * 1000)
  })
})

describe('JSON lines', () => {
  it('reads objects (timestamp/time/ts, key/client/ip, cost/weight) and arrays', () => {
    const text = [
      '{"timestamp": 1714564800, "key": "a", "cost": 2}',
      '{"ts": "2024-05-01T12:00:01Z", "ip": "10.0.0.1"}',
      '[1714564802, "b"]',
      '{"time": 1714564803}',
    ].join('\n')
    expect(parseTrace(text, { source: 'x.jsonl' }).requests).toEqual([
      { t: T, key: 'a', cost: 2 },
      { t: T + 1000, key: '10.0.0.1' },
      { t: T + 2000, key: 'b' },
      { t: T + 3000 },
    ])
  })
})

describe('errors name the line (counting blank and comment lines) and the problem', () => {
  it('a timestamp that is neither a number nor a date', () => {
    const e = problem('# header comment\n1714564800,a\n\n1714564801,b\nabc,c\n')
    expect(e.line).toBe(5)
    expect(e.message).toMatch(/^access\.csv:5: timestamp "abc" is not a number or an ISO 8601 date \(write epoch seconds like/)
  })

  it('a date that does not exist', () => {
    expect(problem('2024-02-30T00:00:00Z')).toMatchObject({ line: 1, problem: expect.stringContaining('timestamp "2024-02-30T00:00:00Z" is not a number') })
  })

  it('numbers in two units in one file', () => {
    const e = problem('1714564800\n1714564801\n1714564802000\n')
    expect(e.line).toBe(3)
    expect(e.problem).toBe(
      'timestamp 1714564802000 reads as milliseconds but line 1 (1714564800) was read as seconds; use one unit per file (numbers below 1e11 are seconds), or force one with --time-unit s|ms',
    )
  })

  it('a cost that is not a number >= 0', () => {
    expect(problem('1,a,1\n2,a,-1\n')).toMatchObject({ line: 2, problem: 'cost "-1" is not a number >= 0' })
    expect(problem('1,a,lots\n')).toMatchObject({ line: 1, problem: 'cost "lots" is not a number >= 0' })
  })

  it('a missing timestamp', () => {
    expect(problem('1,a\n,b\n')).toMatchObject({ line: 2, problem: 'missing timestamp' })
    expect(problem('{"key": "a"}', {})).toMatchObject({ line: 1, problem: 'missing timestamp (name it timestamp, time or ts)' })
  })

  it('too many columns without a header', () => {
    expect(problem('1,a,1,200\n').problem).toMatch(/^4 columns, expected at most 3 \(timestamp,key,cost\); to read other columns, start the file with a header/)
  })

  it('an unterminated quote', () => {
    expect(problem('1,"a\n')).toMatchObject({ line: 1, problem: 'unterminated quoted field (a " opens it and none closes it)' })
  })

  it('invalid JSON, or JSON of the wrong shape', () => {
    const e = problem('{"ts": 1}\n{"ts": 2,}\n')
    expect(e.line).toBe(2)
    expect(e.problem).toMatch(/^not valid JSON \(/)
    expect(problem('{"ts": 1}\n"just a string"\n')).toMatchObject({ line: 2, problem: expect.stringMatching(/^expected a JSON object like/) })
  })

  it('no requests at all', () => {
    expect(problem('# only a comment\n\n')).toMatchObject({ line: 0, message: 'access.csv: no requests: every line is blank or a comment' })
  })
})
