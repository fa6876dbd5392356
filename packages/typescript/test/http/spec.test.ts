// Runs every case of spec/http through the real RateLimiter and header functions (the Python SDK runs the same files).
import { describe, expect, it } from 'vitest'
import { cidrContains } from '../../src/http/ip.js'
import { formatIp, type HeaderFormat, moreRestrictive, parseCidr, parseIp, rateLimitHeaders, rejectionBody, rejectionStatus } from '../../src/index.js'
import { loadSpec, type RequestCase, type SpecDecision, specLimiter, specView, toTsDecision } from './support.js'

for (const file of ['client-ip.json', 'keys.json', 'exemptions.json']) {
  describe(`spec/http/${file}`, () => {
    const { cases } = loadSpec<{ cases: RequestCase[] }>(file)
    it('has cases', () => expect(cases.length).toBeGreaterThan(5))
    for (const c of cases) {
      it(c.name, () => {
        const { limiter } = specLimiter(c)
        const req = specView(c)
        const explained = limiter.debugKey(req)
        if ('client_ip' in c.expect) expect(explained.clientIp ?? null, 'client_ip').toBe(c.expect.client_ip)
        if ('key' in c.expect) expect(explained.key ?? null, 'key').toBe(c.expect.key)
        if ('exempt' in c.expect) expect(explained.exempt ?? null, 'exempt').toBe(c.expect.exempt)
        // check() agrees with debugKey(): exempt requests never reach the store, others are counted under the key.
        const d = limiter.check(req)
        if (explained.exempt !== undefined) {
          expect(d).toMatchObject({ allowed: true, reason: 'exempt' })
          expect(limiter.stats().totalChecks).toBe(0)
          expect(limiter.store.size()).toBe(0)
        } else {
          expect(d).toMatchObject({ allowed: true, remaining: 99 })
          expect(limiter.check(explained.key as string).remaining).toBe(98)
        }
      })
    }
  })
}

describe('spec/http/addresses.json', () => {
  const spec = loadSpec<{
    parse: { input: string; canonical: string | null }[]
    cidr: { cidr: string; canonical: string | null; contains?: string[]; excludes?: string[] }[]
    ipv6_prefix_keys: { address: string; bits: number; key: string }[]
  }>('addresses.json')
  for (const p of spec.parse) {
    it(`parse ${JSON.stringify(p.input)} -> ${p.canonical}`, () => {
      const a = parseIp(p.input)
      expect(a === undefined ? null : formatIp(a)).toBe(p.canonical)
    })
  }
  for (const c of spec.cidr) {
    it(`cidr ${c.cidr}`, () => {
      const r = parseCidr(c.cidr)
      expect(r?.text ?? null).toBe(c.canonical)
      for (const a of c.contains ?? []) expect(cidrContains(r!, parseIp(a)!), `${a} in ${c.cidr}`).toBe(true)
      for (const a of c.excludes ?? []) expect(cidrContains(r!, parseIp(a)!), `${a} not in ${c.cidr}`).toBe(false)
    })
  }
  for (const k of spec.ipv6_prefix_keys) {
    it(`ipv6Prefix ${k.bits}: ${k.address} -> ${k.key}`, async () => {
      const { specLimiter: make, specView: v } = await import('./support.js')
      const c: RequestCase = { name: '', config: { ipv6_prefix: k.bits }, request: { peer: k.address, method: 'GET', path: '/', headers: {} }, expect: {} }
      expect(make(c).limiter.debugKey(v(c)).key).toBe(k.key)
    })
  }
})

describe('spec/http/headers.json', () => {
  const { cases } = loadSpec<{
    cases: {
      name: string
      decision: SpecDecision
      format: HeaderFormat
      window: number
      now_ms: number
      expect: { headers: Record<string, string>; status: number | null; body: string | null }
    }[]
  }>('headers.json')
  for (const c of cases) {
    it(c.name, () => {
      const d = toTsDecision(c.decision)
      expect(rateLimitHeaders(d, c.format, c.window, c.now_ms)).toEqual(c.expect.headers)
      if (c.expect.status === null) {
        expect(d.allowed).toBe(true)
      } else {
        expect(rejectionStatus(d)).toBe(c.expect.status)
        expect(rejectionBody(d)).toBe(c.expect.body)
        JSON.parse(rejectionBody(d))
      }
    })
  }
})

describe('spec/http/restrictive.json', () => {
  const { cases } = loadSpec<{ cases: { name: string; first: SpecDecision; second: SpecDecision; describes: 'first' | 'second' }[] }>('restrictive.json')
  for (const c of cases) {
    it(c.name, () => {
      expect(moreRestrictive(toTsDecision(c.second), toTsDecision(c.first)) ? 'second' : 'first').toBe(c.describes)
    })
  }
})
