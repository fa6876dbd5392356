// The README's SaaS example (examples/saas-api.mjs): plans from a user table, a monthly quota, penalties, Prometheus metrics, as documented.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { PACKAGE_ROOT, startExample, until } from '../support/examples.js'

// The example imports the built package ('halt', 'halt/express', 'halt/prometheus'): `npm test` builds before testing.
it.runIf(existsSync(join(PACKAGE_ROOT, 'dist/telemetry/prometheus.js')))(
  'examples/saas-api.mjs: plan limits, penalties, a monthly quota, /metrics, and no API key in logs or metrics',
  async () => {
    const { url, out } = await startExample('examples/saas-api.mjs', { stderr: true })
    const as = (key: string) => ({ headers: { 'x-api-key': key } })

    // pro: its plan's limit.
    const bob = await fetch(`${url}/api/report`, as('sk_test_bob'))
    expect(bob.status).toBe(200)
    expect(bob.headers.get('ratelimit-limit')).toBe('100')
    expect(await bob.json()).toEqual({ user: 'bob', plan: 'pro', report: 'ok' })

    // free: 5 a minute, then 429; the rejections build an abuse score until a penalty halves the limit.
    const alice: Response[] = []
    for (let i = 0; i < 12; i++) alice.push(await fetch(`${url}/api/report`, as('sk_test_alice')))
    expect(alice.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 429, 429])
    expect(alice[0]!.headers.get('ratelimit-limit')).toBe('5')
    expect(await alice[11]!.json()).toMatchObject({ error: 'rate_limit_exceeded' })
    expect(alice[11]!.headers.get('ratelimit-limit')).toBe('2') // penalised: 5 x 0.5, whole units

    // trial: 3 calls a month; the 4th is over the quota until the 1st of next month, 00:00 UTC.
    const carol: Response[] = []
    for (let i = 0; i < 4; i++) carol.push(await fetch(`${url}/api/report`, as('sk_test_carol')))
    expect(carol.map((r) => r.status)).toEqual([200, 200, 200, 429])
    const over = (await carol[3]!.json()) as { error: string; reset_at: string }
    expect(over.error).toBe('quota_exceeded')
    expect(over.reset_at).toMatch(/^\d{4}-\d\d-01T00:00:00Z$/)

    expect((await fetch(`${url}/api/report`, as('sk_unknown'))).status).toBe(401)

    const metrics = await (await fetch(`${url}/metrics`)).text()
    const count = (labels: string) => Number(new RegExp(`^halt_decisions_total\\{${labels}\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0)
    expect(count('policy="plan_pro",outcome="allowed",reason="none",shadow="false"')).toBe(1)
    expect(count('policy="plan_free",outcome="allowed",reason="none",shadow="false"')).toBe(5)
    const limited = count('policy="plan_free",outcome="blocked",reason="limit",shadow="false"')
    const penalised = count('policy="plan_free",outcome="blocked",reason="penalty",shadow="false"')
    expect(limited).toBeGreaterThanOrEqual(3)
    expect(penalised).toBeGreaterThanOrEqual(1)
    expect(limited + penalised).toBe(7)
    expect(metrics).toMatch(/^halt_check_duration_seconds_count\{policy="plan_trial"\} 4$/m)
    // The quota's decisions reach the same sinks, under the quota's name.
    expect(count('policy="calls_trial",outcome="allowed",reason="none",shadow="false"')).toBe(3)
    expect(count('policy="calls_trial",outcome="blocked",reason="quota",shadow="false"')).toBe(1)

    // Every decision logged: 1 + 12 + 4 by the limiter, and 1 + 5 + 4 quota decisions for the requests it admitted.
    await until(() => out().split('key=user:carol').length === 9)
    expect(out()).toMatch(/^\d\d:\d\d:\d\d req_id=[0-9a-f]{8} key=user:alice check=penalty remaining=0 retry_after=\d+$/m)
    const logs = out()
      .split('\n')
      .filter((l) => l.includes(' req_id='))
    // The quota's line carries the request's id: the same as the limiter's line for that request.
    const quotaLine = logs.find((l) => / key=user:carol check=quota remaining=0 retry_after=\d+$/.test(l)) ?? ''
    const id = / req_id=([0-9a-f]{8}) /.exec(quotaLine)?.[1]
    expect(id).toBeDefined()
    expect(logs.filter((l) => l.includes(` req_id=${id} key=user:carol `)).map((l) => l.split(' ')[3])).toEqual(['check=pass', 'check=quota'])
    expect(logs).toHaveLength(28) // and one near-limit warning: alice's 4th call took her to 80% of 5
    expect(logs.filter((l) => l.includes(' near_limit '))).toEqual([expect.stringMatching(/ key=user:alice near_limit policy=plan_free remaining=1 limit=5$/)])
    expect(`${logs.join('\n')}\n${metrics}`).not.toContain('sk_test_')
  },
)
