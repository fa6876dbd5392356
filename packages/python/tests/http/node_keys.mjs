// Reads {configs, cases} as JSON on stdin and prints, for every config and case, what the built TypeScript
// package's limiter.debugKey() says: the other half of tests/http/test_node_parity.py.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

const [dist] = process.argv.slice(2)
const { RateLimiter, InMemoryStore } = await import(pathToFileURL(dist).href)
const input = JSON.parse(readFileSync(0, 'utf8'))

function limiterOf(c) {
  return new RateLimiter({
    store: new InMemoryStore({ sweepInterval: 0 }),
    clock: () => 1_700_000_000_000,
    onWarning: () => {},
    policy: { name: 'parity', limit: 100, window: 60, ...(c.key_strategy ? { keyStrategy: c.key_strategy } : {}) },
    trustedProxies: c.trusted_proxies,
    proxyHeader: c.proxy_header,
    exemptPrivateIps: c.exempt_private_ips,
    exemptHealthChecks: c.exempt_health_checks,
    exemptions: c.exemptions,
    ipv6Prefix: c.ipv6_prefix,
    onMissingIdentity: c.on_missing_identity,
    apiKeySecret: c.api_key_secret,
    keyExtractor: c.key_header ? (req) => req.header(c.key_header) : undefined,
  })
}

function viewOf(r) {
  return {
    ip: r.peer ?? undefined,
    method: 'GET',
    path: r.path,
    header(name) {
      const v = r.headers[name]
      return Array.isArray(v) ? v.join(', ') : v
    },
    user: r.user ?? undefined,
  }
}

const limiters = input.configs.map(limiterOf)
const out = input.cases.map((r) =>
  limiters.map((l) => {
    const e = l.debugKey(viewOf(r))
    return { key: e.key ?? null, exempt: e.exempt ?? null, client_ip: e.clientIp ?? null }
  }),
)
process.stdout.write(JSON.stringify(out))
