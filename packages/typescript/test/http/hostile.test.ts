// Generated hostile requests: malformed, huge and repeated forwarding headers, odd addresses, path tricks, giant API keys.
// Nothing may throw, keys stay bounded, and no input earns an exemption it should not have.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { forwardedNodes, hopAddress } from '../../src/http/forwarded.js'
import { formatIp, parseIp, pathOf, type RequestView } from '../../src/index.js'
import { anyPeer, EXACT, header, hostile, publicIp, trickPath } from '../support/hostile.js'
import { httpLimiter, view } from './support.js'

const user = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.string(),
  fc.integer(),
  fc.record({ id: fc.oneof(hostile, fc.integer(), fc.double(), fc.constant(null), fc.object()) }),
  fc.constant({
    get id(): string {
      throw new Error('getter')
    },
  }),
)

function hostileView(peer: string | undefined, headers: Record<string, string | string[]>, path: string, u: unknown): RequestView {
  return view({ ip: peer, headers, path, user: u })
}

const RUNS = { numRuns: 400 }

describe('hostile requests never throw and keys stay bounded', () => {
  const limiters = [
    httpLimiter({ policy: { name: 'ip', limit: 5, window: 60 } }).limiter,
    httpLimiter({ policy: { name: 'ip', limit: 5, window: 60 }, trustedProxies: ['10.0.0.0/8', 'loopback', 'fc00::/7'] }).limiter,
    httpLimiter({ policy: { name: 'fw', limit: 5, window: 60 }, trustedProxies: ['private'], proxyHeader: 'forwarded' }).limiter,
    httpLimiter({ policy: { name: 'u', limit: 5, window: 60, keyStrategy: 'user' }, onMissingIdentity: 'shared' }).limiter,
    httpLimiter({ policy: { name: 'k', limit: 5, window: 60, keyStrategy: 'api_key' }, exemptPrivateIps: false }).limiter,
    httpLimiter({ policy: { name: 'c', limit: 5, window: 60, keyStrategy: 'composite' }, ipv6Prefix: 128 }).limiter,
    httpLimiter({ policy: { name: 'x', limit: 5, window: 60 }, keyExtractor: (r) => r.header('x-user') }).limiter,
  ]
  it('for any peer, headers, path and user', () => {
    fc.assert(
      fc.property(anyPeer, header, fc.oneof(trickPath, hostile), user, (peer, headers, path, u) => {
        for (const l of limiters) {
          const req = hostileView(peer as string | undefined, headers, path, u)
          const explained = l.debugKey(req)
          const d = l.check(req)
          expect(typeof d.allowed).toBe('boolean')
          expect(Number.isFinite(d.remaining) && Number.isFinite(d.resetAt) && Number.isFinite(d.retryAfter)).toBe(true)
          if (explained.key !== undefined) expect(explained.key.length).toBeLessThanOrEqual(320)
          expect(explained.key === undefined).toBe(explained.exempt !== undefined)
        }
      }),
      RUNS,
    )
  })

  it('parsers accept anything', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        hopAddress(s)
        forwardedNodes(s)
        parseIp(s)
        pathOf(s)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('hostile requests never gain an exemption', () => {
  it('a path is exempt only when it is exactly an exempt path (query aside)', () => {
    const { limiter } = httpLimiter({ policy: { limit: 5, window: 60 } })
    fc.assert(
      fc.property(publicIp, fc.oneof(trickPath, hostile), header, (peer, path, headers) => {
        const e = limiter.debugKey(view({ ip: peer, path, headers })).exempt
        if (e !== undefined) {
          expect(e).toBe('path')
          expect(EXACT.has(pathOf(path)), path).toBe(true)
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('prefix exemptions need a canonical rest', () => {
    const { limiter } = httpLimiter({ policy: { limit: 5, window: 60 }, exemptions: ['/internal/*'], exemptHealthChecks: false })
    fc.assert(
      fc.property(trickPath, (path) => {
        if (limiter.debugKey(view({ path })).exempt === 'path') {
          const p = pathOf(path)
          expect(p === '/internal' || p.startsWith('/internal/')).toBe(true)
          expect(p).toMatch(/^(\/[A-Za-z0-9\-._~!$&'()*+,=:@]+)+\/?$/)
          expect(p.split('/')).not.toContain('..')
          expect(p.split('/')).not.toContain('.')
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('an untrusted public peer is the client whatever it sends', () => {
    const { limiter } = httpLimiter({ policy: { limit: 5, window: 60 }, trustedProxies: ['10.0.0.0/8'] })
    fc.assert(
      fc.property(publicIp, header, (peer, headers) => {
        const e = limiter.debugKey(view({ ip: peer, headers }))
        expect(e.exempt).toBeUndefined()
        expect(e.clientIp).toBe(parseIp(peer) && e.clientIp)
        expect(e.key).toMatch(/^ip:/)
      }),
      RUNS,
    )
  })

  it('behind a trusted proxy that appends the peer, the appended address is the client, whatever the client wrote before it', () => {
    const xff = httpLimiter({ policy: { limit: 5, window: 60 }, trustedProxies: ['10.0.0.0/8'] }).limiter
    const fwd = httpLimiter({ policy: { limit: 5, window: 60 }, trustedProxies: ['10.0.0.0/8'], proxyHeader: 'forwarded' }).limiter
    fc.assert(
      fc.property(hostile, publicIp, (spoofed, client) => {
        const a = xff.debugKey(view({ ip: '10.0.0.2', headers: { 'x-forwarded-for': `${spoofed}, ${client}` } }))
        expect(a.exempt).toBeUndefined()
        expect(a.key).toBe(xff.debugKey(view({ ip: client })).key)
        // Forwarded: the appended element wins, or (unbalanced quotes in the spoofed part) the proxy stands in, never exempt.
        const node = client.includes(':') ? `"[${client}]"` : client
        const b = fwd.debugKey(view({ ip: '10.0.0.2', headers: { forwarded: [spoofed, `for=${node}`] } }))
        expect(b.exempt).toBeUndefined()
        expect([fwd.debugKey(view({ ip: client })).key, 'ip:10.0.0.2']).toContain(b.key)
      }),
      RUNS,
    )
  })

  it('a private address is exempt only when it is the client a well-formed chain resolves to (reference walk)', () => {
    const { limiter } = httpLimiter({ policy: { limit: 5, window: 60 }, trustedProxies: ['10.0.0.0/8'] })
    const trusted = (ip: string) => /^10\./.test(ip)
    const isPrivate = (ip: string) => /^(10\.|127\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(ip) || ip === '::1' || /^f[cd][0-9a-f]{0,2}:/.test(ip)
    /** An independent reading of the rule: right to left, skip trusted, stop at the first untrusted; any malformed hop: no exemption. */
    function reference(header: string): boolean {
      if (header === '') return true // no hops: the proxy itself (10.0.0.2, private) is the client
      const hops = header.split(',')
      for (let i = hops.length - 1; i >= 0; i--) {
        if (hops.length - i > 32) return false
        const text = hopAddress(hops[i] as string)
        const a = text === undefined ? undefined : parseIp(text)
        if (a === undefined) return false
        const ip = formatIp(a)
        if (!trusted(ip) || i === 0) return isPrivate(ip)
      }
      return false
    }
    fc.assert(
      fc.property(hostile, (junk) => {
        const e = limiter.debugKey(view({ ip: '10.0.0.2', headers: { 'x-forwarded-for': junk } }))
        expect(e.exempt === 'private_ip', JSON.stringify(junk)).toBe(reference(junk))
      }),
      { numRuns: 3000 },
    )
  })
})
