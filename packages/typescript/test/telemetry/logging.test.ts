// LoggingTelemetry: the documented line per decision, levels, shadow and failure-policy marks, quoting, and no raw API key.
import { describe, expect, it } from 'vitest'
import { type DecisionEvent, HaltConfigError, InMemoryStore, type Logger, LoggingTelemetry, type Outcome, RateLimiter, type Store } from '../../src/index.js'
import { view } from '../http/support.js'
import { fakeClock } from '../support/clock.js'

const T = Date.UTC(2026, 11, 1, 12, 41, 1) // 12:41:01 UTC

function logger() {
  const lines: { level: 'info' | 'warn'; line: string }[] = []
  const log: Logger = {
    info: (line) => void lines.push({ level: 'info', line }),
    warn: (line) => void lines.push({ level: 'warn', line }),
  }
  return { log, lines }
}

function setup(policy = { name: 'api', limit: 3, window: 60 }, extra: Partial<ConstructorParameters<typeof LoggingTelemetry>[0]> = {}) {
  const clock = fakeClock(T)
  const { log, lines } = logger()
  const limiter = new RateLimiter({
    store: new InMemoryStore({ sweepInterval: 0 }),
    clock,
    policy,
    telemetry: new LoggingTelemetry({ logger: log, timeZone: 'utc', clock, ...extra }),
    onWarning: () => {},
  })
  return { limiter, lines, clock }
}

describe('LoggingTelemetry', () => {
  it('one line per decision, in the documented form', () => {
    const { limiter, lines, clock } = setup()
    const as = (id: string) => view({ ip: '203.0.113.7', headers: { 'x-request-id': id } })
    limiter.check(as('8f1'))
    limiter.check(as('8f2'))
    limiter.check(as('8f3'))
    clock.advance(2000)
    limiter.check(as('2c7'))
    limiter.check(view({ ip: '127.0.0.1', headers: { 'x-request-id': 'a40' } }))
    limiter.check('user:42')
    expect(lines).toEqual([
      { level: 'info', line: '12:41:01 req_id=8f1 key=ip:203.0.113.7 check=pass remaining=2' },
      { level: 'info', line: '12:41:01 req_id=8f2 key=ip:203.0.113.7 check=pass remaining=1' },
      { level: 'info', line: '12:41:01 req_id=8f3 key=ip:203.0.113.7 check=pass remaining=0' },
      // The limiter's near-limit signal (80% of the capacity by default): this request took it from 2 of 3 to 3.
      { level: 'warn', line: '12:41:01 req_id=8f3 key=ip:203.0.113.7 near_limit policy=api remaining=0 limit=3' },
      { level: 'warn', line: '12:41:03 req_id=2c7 key=ip:203.0.113.7 check=limit remaining=0 retry_after=18' },
      { level: 'info', line: '12:41:03 req_id=a40 key=ip:127.0.0.1 check=exempt' },
      { level: 'info', line: '12:41:03 req_id=- key=user:42 check=pass remaining=2' },
    ])
  })

  it('a request without an id gets a made-up one; the check is the rejection reason', () => {
    const { limiter, lines } = setup({ name: 'login', limit: 1, window: 60, blockDuration: '5m' } as never)
    limiter.check(view())
    limiter.check(view())
    limiter.check(view())
    expect(lines[0]!.line).toMatch(/^12:41:01 req_id=[0-9a-f]{8} key=ip:203\.0\.113\.7 check=pass remaining=0$/)
    expect(lines[1]!.line).toMatch(/ near_limit policy=login remaining=0 limit=1$/)
    expect(lines[2]!.line).toMatch(/ check=limit remaining=0 retry_after=300$/)
    expect(lines[3]!.line).toMatch(/ check=cooldown remaining=0 retry_after=300$/)
  })

  it('logAllowed: false keeps only rejections and warnings', () => {
    const { limiter, lines } = setup({ name: 'api', limit: 1, window: 60 }, { logAllowed: false })
    limiter.check('k')
    limiter.check('k')
    expect(lines.map((l) => l.line)).toEqual([
      '12:41:01 req_id=- key=k near_limit policy=api remaining=0 limit=1',
      '12:41:01 req_id=- key=k check=limit remaining=0 retry_after=60',
    ])
  })

  it('marks shadow decisions and those of the failure policy; logs near-limit signals and store errors at warn', async () => {
    const { log, lines } = logger()
    const t = new LoggingTelemetry({ logger: log, timeZone: 'utc', clock: () => T })
    const d = { allowed: false, limit: 10, remaining: 0, resetAt: 0, retryAfter: 4, policy: 'new-plan', reason: 'limit' as const, delay: 0 }
    t.onCheck({ key: 'user:7', cost: 1, decision: d, shadow: true, requestId: 'r1' })
    t.onNearLimit({ key: 'user:7', cost: 1, decision: { ...d, allowed: true, remaining: 2, reason: undefined }, requestId: 'r2' })
    expect(lines).toEqual([
      { level: 'warn', line: '12:41:01 req_id=r1 key=user:7 check=limit remaining=0 retry_after=4 shadow=true' },
      { level: 'warn', line: '12:41:01 req_id=r2 key=user:7 near_limit policy=new-plan remaining=2 limit=10' },
    ])

    lines.length = 0
    const inner = new InMemoryStore({ sweepInterval: 0 })
    const down: Store = {
      synchronous: false,
      consume: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:6379')
      },
      peek: async (...a) => ({ ...inner.peek(...a) }) as Outcome,
      reset: async () => {},
      clear: async () => {},
    }
    const limiter = new RateLimiter({ store: down, clock: () => T, policy: { name: 'api', limit: 5, window: 60 }, telemetry: t, onStoreError: 'closed' })
    await limiter.check('ip:203.0.113.7')
    expect(lines).toEqual([
      {
        level: 'warn',
        line: '12:41:01 store_error policy=api key=ip:203.0.113.7 operation=check action=closed error="connect ECONNREFUSED 127.0.0.1:6379"',
      },
      { level: 'warn', line: '12:41:01 req_id=- key=ip:203.0.113.7 check=store_error remaining=0 retry_after=1 store_error=closed' },
    ])
  })

  it('quotes values that could break a line, and never prints a raw API key', () => {
    const raw = 'sk_live_9f8e7d6c5b4a'
    const { log, lines } = logger()
    const limiter = new RateLimiter({
      policy: { limit: 5, window: 60, keyStrategy: 'api_key' },
      telemetry: new LoggingTelemetry({ logger: log }),
      onWarning: () => {},
    })
    limiter.check(view({ headers: { 'x-api-key': raw } }))
    limiter.check(view({ headers: { authorization: `Bearer ${raw}` } }))
    limiter.check('tenant 1\nFAKE LINE check=pass')
    expect(lines).toHaveLength(3)
    expect(lines[0]!.line).toMatch(/ key=apikey:[0-9a-f]{32} check=pass remaining=4$/)
    expect(lines[2]!.line).toContain(' key="tenant 1\\nFAKE LINE check=pass" check=pass')
    for (const l of lines) expect(l.line).not.toContain(raw)
    expect(lines.every((l) => !l.line.includes('\n'))).toBe(true)
  })

  it('local time by default', () => {
    const { log, lines } = logger()
    const e: DecisionEvent = { key: 'k', cost: 1, decision: { allowed: true, limit: 1, remaining: 0, resetAt: 0, retryAfter: 0, policy: 'p', delay: 0 } }
    new LoggingTelemetry({ logger: log, clock: () => T }).onCheck(e)
    expect(lines[0]!.line.slice(0, 8)).toBe(new Date(T).toTimeString().slice(0, 8))
  })

  it('rejects a logger without info/warn and an unknown time zone', () => {
    for (const o of [{ logger: { info: () => {} } }, { logger: null }, { timeZone: 'Europe/Berlin' }, { clock: 5 }]) {
      expect(() => new LoggingTelemetry(o as never)).toThrow(HaltConfigError)
    }
  })
})
