// The HTTP rules of one limiter: options validated once, then client address, exemptions and keys for each RequestView.
import { HaltConfigError } from '../core/errors.js'
import { KeyStrategy, type KeyStrategyName } from '../core/types.js'
import { forwardedNodes, hopAddress, MAX_HOPS } from './forwarded.js'
import { Hmac, randomBytes, sha256, toHex } from './hash.js'
import { type Cidr, formatIp, inRanges, LOOPBACK_RANGES, maskIp, PRIVATE_CIDRS, PRIVATE_RANGES, parseCidr, parseIp } from './ip.js'
import { HEALTH_CHECK_PATHS, PathExemptions, validPathPattern } from './paths.js'
import type { RequestView } from './request.js'
import { type HaltWarning, WarningCode, type WarningCodeName, Warnings } from './warnings.js'

/** What to do when the key strategy finds no identity (anonymous request under `user`, no API key, ...). */
export type MissingIdentity = 'ip' | 'shared' | 'allow'

/**
 * HTTP options of a `RateLimiter` (all optional). They decide who a request is
 * and whether it is limited at all; how the answer is written (headers, 429) is
 * the adapter's business.
 */
export interface HttpOptions {
  /**
   * Proxies whose forwarding header is believed: CIDRs or addresses, IPv4 and
   * IPv6 (`'10.0.0.0/8'`, `'2001:db8::/32'`, `'203.0.113.9'`), or `'loopback'`,
   * `'private'`. Default none: the socket's peer is the client.
   */
  trustedProxies?: readonly string[]
  /**
   * The header trusted proxies write: `'x-forwarded-for'` (default), `'forwarded'`
   * (RFC 7239), or another list header your proxy sets (e.g. `'x-real-ip'`).
   */
  proxyHeader?: string
  /** Exempt private and loopback clients (127/8, 10/8, 172.16/12, 192.168/16, ::1, fc00::/7). Default true. */
  exemptPrivateIps?: boolean
  /** Exempt `/health`, `/ping`, `/ready`, `/healthz`, `/livez`. Default true. */
  exemptHealthChecks?: boolean
  /** More exemptions: paths (`'/status'`, `'/internal/*'`), addresses and CIDRs (`'198.51.100.0/24'`). */
  exemptions?: readonly string[]
  /** Exempt a request when this returns true. A throw counts as false (and warns once). */
  skip?: (req: RequestView) => boolean
  /** The `custom` strategy's identity (also implies it when the policy names no strategy). */
  keyExtractor?: (req: RequestView) => string | number | undefined
  /** The `user` strategy's identity. Default: `req.user.id`, or `req.user` when it is a string or number. */
  userId?: (req: RequestView) => string | number | undefined
  /** IPv6 clients are keyed by this prefix so one host cannot rotate through its subnet. 1-128, default 64. */
  ipv6Prefix?: number
  /** When the strategy finds no identity: `'ip'` (default: key by client address), `'shared'` (one key for all), `'allow'` (not limited). */
  onMissingIdentity?: MissingIdentity
  /**
   * Secret of the keyed hash (HMAC-SHA-256) that replaces API keys in storage
   * keys, at least 16 bytes. Default: random per process, which is right for the
   * in-memory store; a shared store needs the same secret on every instance.
   */
  apiKeySecret?: string | Uint8Array
  /** Where warnings go. Default `console.warn`. Each code is reported once per limiter. */
  onWarning?: (warning: HaltWarning) => void
  /** Turn warnings off: `false` (all) or `{ HALT_UNCONFIGURED_PROXY: false }`. */
  validations?: boolean | Partial<Record<WarningCodeName, boolean>>
}

/** What a client address means to this limiter. Cached per address text. */
export interface AddrInfo {
  /** Canonical address. */
  readonly ip: string
  /** Storage identity: `ip:203.0.113.7`, `ip:2001:db8:1:2::/64`. */
  readonly key: string
  readonly private: boolean
  /** In the custom `exemptions`. */
  readonly listed: boolean
  readonly trusted: boolean
  /** False when the forwarding chain was malformed or too long: the address is only the nearest trusted hop, so it is never exempt. */
  readonly certain: boolean
}

/** Why a request is exempt. `no_identity`: `onMissingIdentity: 'allow'`. */
export type ExemptReason = 'skip' | 'path' | 'private_ip' | 'listed_ip' | 'no_identity'

const KEY_STRATEGIES = Object.values(KeyStrategy) as string[]
const MAX_IDENTITY = 256
const MAX_API_KEY = 4096
const CACHE_MAX = 4096
/** Shared key of the `'shared'` missing-identity mode. */
export const ANONYMOUS_KEY = 'anonymous'
/** Key of requests whose client address is unknown. */
export const UNKNOWN_IP_KEY = 'ip:unknown'

let processHmac: Hmac | undefined

/**
 * An identity as a storage key: `prefix:id` when short and printable, else `prefix#<sha-256>` (never raw bytes, never huge).
 *
 * @example
 * identityKey('user', '42')           // 'user:42'
 * identityKey('user', 'Ada Lovelace') // 'user#' + 32 hex characters
 */
export function identityKey(prefix: string, id: string): string {
  return plainIdentity(id) ? `${prefix}:${id}` : hashedIdentity(prefix, id)
}

/** 1-256 printable ASCII characters, no space, no `|` (the composite separator). */
function plainIdentity(id: string): boolean {
  if (id.length === 0 || id.length > MAX_IDENTITY) return false
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    if (c <= 32 || c >= 127 || c === 124) return false
  }
  return true
}

function hashedIdentity(prefix: string, id: string): string {
  return `${prefix}#${toHex(sha256(id), 16)}`
}

function fail(code: string, message: string): never {
  throw new HaltConfigError(code, message)
}

function isFn(v: unknown): v is (...a: never[]) => unknown {
  return typeof v === 'function'
}

/**
 * The compiled HTTP options of one limiter. Everything that can be checked is
 * checked here, at construction; at request time nothing throws.
 */
export class HttpRules {
  readonly trusted: readonly Cidr[]
  readonly proxyHeader: string
  readonly exemptPrivate: boolean
  readonly paths: PathExemptions
  readonly exemptCidrs: readonly Cidr[]
  readonly skip: ((req: RequestView) => boolean) | undefined
  readonly keyExtractor: ((req: RequestView) => string | number | undefined) | undefined
  readonly userId: ((req: RequestView) => string | number | undefined) | undefined
  readonly ipv6Prefix: number
  readonly onMissing: MissingIdentity
  readonly warnings: Warnings
  /** True when state is shared between processes (a remote store): the API-key secret must be too. */
  private readonly sharedStore: boolean
  private hmac: Hmac | undefined
  private readonly secretGiven: boolean
  private readonly cache = new Map<string, AddrInfo | null>()
  private privateSeen = 0

  constructor(o: HttpOptions, sharedStore: boolean) {
    this.sharedStore = sharedStore
    this.warnings = new Warnings(o.onWarning, o.validations)

    const trusted: Cidr[] = []
    if (o.trustedProxies !== undefined) {
      if (!Array.isArray(o.trustedProxies)) {
        fail('HALT_INVALID_TRUSTED_PROXY', `trustedProxies must be an array of CIDRs or addresses, like ['10.0.0.0/8'], got ${String(o.trustedProxies)}.`)
      }
      for (const entry of o.trustedProxies) {
        const named = entry === 'loopback' ? LOOPBACK_RANGES : entry === 'private' ? PRIVATE_RANGES : undefined
        const ranges = named ?? [entry]
        for (const r of ranges) {
          const c = typeof r === 'string' ? parseCidr(r) : undefined
          if (c === undefined) {
            fail(
              'HALT_INVALID_TRUSTED_PROXY',
              `trustedProxies: '${String(entry)}' is not an IPv4/IPv6 address or CIDR. Fix: list your proxies like ['10.0.0.0/8', '2001:db8::/32'] or use 'loopback' / 'private'.`,
            )
          }
          if (c.bits === 0) {
            fail(
              'HALT_TRUST_ALL_PROXIES',
              `trustedProxies: '${entry}' trusts every address, so any client could name its own address in X-Forwarded-For and escape its limit. Fix: list only your proxies' ranges.`,
            )
          }
          trusted.push(c)
        }
      }
    }
    this.trusted = trusted

    const header = o.proxyHeader ?? 'x-forwarded-for'
    if (typeof header !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header)) {
      fail('HALT_INVALID_PROXY_HEADER', `proxyHeader must be a header name like 'x-forwarded-for' or 'forwarded', got ${String(o.proxyHeader)}.`)
    }
    this.proxyHeader = header.toLowerCase()

    this.exemptPrivate = bool(o.exemptPrivateIps, true, 'exemptPrivateIps')
    const health = bool(o.exemptHealthChecks, true, 'exemptHealthChecks')
    const pathPatterns: string[] = health ? [...HEALTH_CHECK_PATHS] : []
    const cidrs: Cidr[] = []
    if (o.exemptions !== undefined) {
      if (!Array.isArray(o.exemptions)) fail('HALT_INVALID_EXEMPTION', `exemptions must be an array of paths, addresses or CIDRs, got ${String(o.exemptions)}.`)
      for (const e of o.exemptions) {
        if (typeof e === 'string' && e.startsWith('/')) {
          if (!validPathPattern(e)) {
            fail(
              'HALT_INVALID_EXEMPTION',
              `exemptions: path '${e}' is not canonical (no %-escapes, ';', '//', '.' or '..' segments, trailing '/'). Fix: write it as the router sees it, e.g. '/status' or '/internal/*'.`,
            )
          }
          pathPatterns.push(e)
          continue
        }
        const c = typeof e === 'string' ? parseCidr(e) : undefined
        if (c === undefined) {
          fail(
            'HALT_INVALID_EXEMPTION',
            `exemptions: '${String(e)}' is neither a path (starting with '/') nor an address or CIDR. Fix: e.g. '/status', '198.51.100.7' or '198.51.100.0/24'.`,
          )
        }
        cidrs.push(c)
      }
    }
    this.paths = new PathExemptions(pathPatterns)
    this.exemptCidrs = cidrs

    for (const name of ['skip', 'keyExtractor', 'userId'] as const) {
      if (o[name] !== undefined && !isFn(o[name])) fail('HALT_INVALID_CALLBACK', `${name} must be a function of the request, got ${typeof o[name]}.`)
    }
    this.skip = o.skip
    this.keyExtractor = o.keyExtractor
    this.userId = o.userId

    const prefix = o.ipv6Prefix ?? 64
    if (!Number.isInteger(prefix) || prefix < 1 || prefix > 128) {
      fail(
        'HALT_INVALID_IPV6_PREFIX',
        `ipv6Prefix must be a whole number from 1 to 128, got ${String(o.ipv6Prefix)}. Fix: 64 (one key per /64, the usual size of one site's subnet) or 128 (per address).`,
      )
    }
    this.ipv6Prefix = prefix

    const missing = o.onMissingIdentity ?? 'ip'
    if (missing !== 'ip' && missing !== 'shared' && missing !== 'allow') {
      fail('HALT_INVALID_ON_MISSING_IDENTITY', `onMissingIdentity must be 'ip', 'shared' or 'allow', got ${String(o.onMissingIdentity)}.`)
    }
    this.onMissing = missing

    this.secretGiven = o.apiKeySecret !== undefined
    if (o.apiKeySecret !== undefined) {
      const s = o.apiKeySecret
      const len = typeof s === 'string' ? new TextEncoder().encode(s).length : s instanceof Uint8Array ? s.length : -1
      if (len < 16) {
        fail(
          'HALT_INVALID_API_KEY_SECRET',
          'apiKeySecret must be a string or Uint8Array of at least 16 bytes (e.g. 32 random bytes, hex). Fix: apiKeySecret: process.env.HALT_API_KEY_SECRET.',
        )
      }
      this.hmac = new Hmac(s)
    }
  }

  /** Whether the given static key strategy is usable here (raises at construction when it is not). */
  validateStrategy(policyName: string, strategy: KeyStrategyName | undefined): void {
    if (strategy === undefined) return
    if (!KEY_STRATEGIES.includes(strategy)) return // compilePolicy reports it
    if (strategy === 'custom' && this.keyExtractor === undefined) {
      fail(
        'HALT_MISSING_KEY_EXTRACTOR',
        `policy '${policyName}': keyStrategy 'custom' needs keyExtractor. Fix: keyExtractor: (req) => req.header('x-tenant-id').`,
      )
    }
    if (strategy === 'api_key' && this.sharedStore && !this.secretGiven) {
      fail(
        'HALT_API_KEY_SECRET_REQUIRED',
        `policy '${policyName}': keyStrategy 'api_key' on a shared store needs apiKeySecret, so that every instance hashes an API key to the same storage key. Fix: apiKeySecret: process.env.HALT_API_KEY_SECRET (the same on every instance, at least 16 bytes).`,
      )
    }
  }

  /** The effective strategy of a policy: its own, else `custom` when a keyExtractor is set, else `ip`. */
  strategyOf(strategy: KeyStrategyName | undefined): KeyStrategyName {
    return strategy ?? (this.keyExtractor !== undefined ? 'custom' : 'ip')
  }

  /** The client: the peer, or what trusted proxies say it is. Undefined when unknown. */
  client(req: RequestView, trace?: string[]): AddrInfo | undefined {
    const peer = req.ip
    if (typeof peer !== 'string' || peer.length === 0) {
      trace?.push('no peer address: the client is unknown')
      this.warnings.warn(
        WarningCode.NO_CLIENT_ADDRESS,
        `a request arrived without a client address, so it is keyed as '${UNKNOWN_IP_KEY}' and shares one limit with every other such request. Where the runtime does not expose the socket (Next.js, Cloudflare Workers), give the adapter a getIp function, e.g. getIp: ipFromHeader('x-real-ip') on Vercel. (On Node a client that disconnected before the check also has no address.) See docs/http.md#client-address.`,
      )
      return undefined
    }
    const info = this.addr(peer)
    if (info === undefined) {
      trace?.push(`peer address '${peer.slice(0, 64)}' is not an IP address: the client is unknown`)
      return undefined
    }
    if (!info.trusted) {
      trace?.push(`peer ${info.ip} is not a trusted proxy: it is the client${this.trusted.length ? '' : ' (no trustedProxies configured)'}`)
      // Looking for the header of an unconfigured proxy: on the first 1024 requests from private peers, then on every 64th.
      if (
        info.private &&
        this.trusted.length === 0 &&
        (this.privateSeen++ < 1024 || (this.privateSeen & 63) === 0) &&
        this.warnings.pending(WarningCode.UNCONFIGURED_PROXY)
      ) {
        this.checkUnconfiguredProxy(req, info)
      }
      return info
    }
    const value = req.header(this.proxyHeader)
    if (typeof value !== 'string' || value.length === 0) {
      trace?.push(`peer ${info.ip} is a trusted proxy but sent no ${this.proxyHeader}: the peer is the client`)
      return info
    }
    trace?.push(`peer ${info.ip} is a trusted proxy: reading ${this.proxyHeader} right to left`)
    return this.proxyHeader === 'forwarded' ? this.walkForwarded(value, info, trace) : this.walkList(value, info, trace)
  }

  private checkUnconfiguredProxy(req: RequestView, info: AddrInfo): void {
    const via = req.header('x-forwarded-for') !== undefined ? 'X-Forwarded-For' : req.header('forwarded') !== undefined ? 'Forwarded' : undefined
    if (via === undefined) return
    this.warnings.warn(
      WarningCode.UNCONFIGURED_PROXY,
      `a request from the private address ${info.ip} carries ${via}, but no trustedProxies are configured. This limiter is almost certainly behind a proxy or load balancer, so every client looks like ${info.ip}: ${
        this.exemptPrivate ? 'with exemptPrivateIps (the default) every request is exempt and NOTHING IS LIMITED' : 'every client shares that one limit'
      }. Fix: new RateLimiter({ ..., trustedProxies: ['${info.ip}'] }) with your proxies' addresses or CIDRs (e.g. '10.0.0.0/8'). If there is no proxy, silence this with validations: { HALT_UNCONFIGURED_PROXY: false }. See docs/http.md#trusted-proxies.`,
    )
  }

  /** X-Forwarded-For style: comma-separated hops, right to left, skipping trusted ones. */
  private walkList(value: string, peer: AddrInfo, trace: string[] | undefined): AddrInfo {
    let last = peer
    let end = value.length
    for (let hops = 1; ; hops++) {
      const comma = end > 0 ? value.lastIndexOf(',', end - 1) : -1
      const token = value.slice(comma + 1, end)
      const text = hopAddress(token)
      const info = text === undefined ? undefined : this.addr(text)
      if (info === undefined) return this.uncertain(last, `hop '${token.trim().slice(0, 64)}' is not an address`, trace)
      if (!info.trusted) {
        trace?.push(`hop ${info.ip} is not trusted: it is the client`)
        return info
      }
      trace?.push(`hop ${info.ip} is trusted: skipped`)
      last = info
      if (comma < 0) {
        trace?.push(`every hop is trusted: the leftmost, ${info.ip}, is the client`)
        return info
      }
      if (hops >= MAX_HOPS) return this.uncertain(last, `more than ${MAX_HOPS} trusted hops`, trace)
      end = comma
    }
  }

  /** RFC 7239 Forwarded: the `for=` of each element, right to left, skipping trusted ones. */
  private walkForwarded(value: string, peer: AddrInfo, trace: string[] | undefined): AddrInfo {
    const nodes = forwardedNodes(value)
    if (nodes === undefined) return this.uncertain(peer, 'Forwarded cannot be parsed', trace)
    let last = peer
    for (let i = nodes.length - 1, hops = 1; i >= 0; i--, hops++) {
      const node = nodes[i]
      const text = node === undefined ? undefined : hopAddress(node)
      const info = text === undefined ? undefined : this.addr(text)
      if (info === undefined)
        return this.uncertain(last, `element ${i + 1} has no usable for= (${node === undefined ? 'malformed' : `'${node.slice(0, 64)}'`})`, trace)
      if (!info.trusted) {
        trace?.push(`for=${info.ip} is not trusted: it is the client`)
        return info
      }
      trace?.push(`for=${info.ip} is trusted: skipped`)
      last = info
      if (hops >= MAX_HOPS && i > 0) return this.uncertain(last, `more than ${MAX_HOPS} trusted hops`, trace)
    }
    trace?.push(`every hop is trusted: the leftmost, ${last.ip}, is the client`)
    return last
  }

  /** The nearest trusted hop stands in for a client we could not see; it is never exempt. */
  private uncertain(last: AddrInfo, why: string, trace: string[] | undefined): AddrInfo {
    trace?.push(`${why}: stopping at ${last.ip}, which is not exempt`)
    return { ...last, private: false, listed: false, certain: false }
  }

  /** Parse and describe an address text, cached (bounded). */
  addr(text: string): AddrInfo | undefined {
    const hit = this.cache.get(text)
    if (hit !== undefined) return hit ?? undefined
    const a = parseIp(text)
    let info: AddrInfo | null = null
    if (a !== undefined) {
      const ip = formatIp(a)
      const p = this.ipv6Prefix
      info = {
        ip,
        key: a.version === 6 && p < 128 ? `ip:${formatIp(maskIp(a, p))}/${p}` : `ip:${ip}`,
        private: inRanges(PRIVATE_CIDRS, a),
        listed: inRanges(this.exemptCidrs, a),
        trusted: inRanges(this.trusted, a),
        certain: true,
      }
    }
    if (this.cache.size >= CACHE_MAX) this.cache.clear()
    this.cache.set(text, info)
    return info ?? undefined
  }

  /** Why the client's address makes the request exempt, if it does. */
  ipExemption(client: AddrInfo | undefined): ExemptReason | undefined {
    if (client === undefined || !client.certain) return undefined
    if (client.listed) return 'listed_ip'
    if (client.private && this.exemptPrivate) return 'private_ip'
    return undefined
  }

  /** `skip(req)`, where a throw counts as false. */
  skipped(req: RequestView): boolean {
    try {
      return (this.skip as (r: RequestView) => boolean)(req) === true
    } catch (e) {
      this.callbackFailed('skip', e)
      return false
    }
  }

  /** The identity for `strategy`, or undefined when the request has none. */
  key(strategy: KeyStrategyName, req: RequestView, client: AddrInfo | undefined, trace?: string[]): string | undefined {
    switch (strategy) {
      case 'ip':
        return client?.key ?? UNKNOWN_IP_KEY
      case 'user': {
        const id = this.user(req)
        trace?.push(id === undefined ? 'no user on the request' : 'user id from the request')
        return id === undefined ? undefined : identityKey('user', id)
      }
      case 'composite': {
        const id = this.user(req)
        trace?.push(id === undefined ? 'no user on the request' : 'user id and client address')
        return id === undefined ? undefined : `${identityKey('user', id)}|${client?.key ?? UNKNOWN_IP_KEY}`
      }
      case 'api_key': {
        const raw = apiKeyOf(req)
        trace?.push(raw === undefined ? 'no API key (X-API-Key or Authorization: Bearer)' : 'API key, as a keyed hash (HMAC-SHA-256)')
        return raw === undefined ? undefined : `apikey:${this.apiKeyHmac().hex(raw, 16)}`
      }
      case 'custom': {
        let v: unknown
        try {
          v = this.keyExtractor?.(req)
        } catch (e) {
          this.callbackFailed('keyExtractor', e)
          return undefined
        }
        const s = typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined
        trace?.push(s === undefined || s === '' ? 'keyExtractor returned no identity' : 'identity from keyExtractor')
        if (s === undefined || s === '') return undefined
        return plainIdentity(s) ? s : hashedIdentity('custom', s)
      }
    }
  }

  private user(req: RequestView): string | undefined {
    let v: unknown
    try {
      v = this.userId !== undefined ? this.userId(req) : defaultUserId(req.user)
    } catch (e) {
      this.callbackFailed('userId', e)
      return undefined
    }
    if (typeof v === 'string') return v.length > 0 ? v : undefined
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : undefined
    if (typeof v === 'bigint') return String(v)
    return undefined
  }

  private apiKeyHmac(): Hmac {
    if (this.hmac !== undefined) return this.hmac
    if (this.sharedStore) {
      this.warnings.warn(
        WarningCode.API_KEY_SECRET_NOT_SHARED,
        "the 'api_key' strategy runs on a shared store without apiKeySecret, so each process hashes API keys with its own random secret and keeps its own counters: the limit is multiplied by the number of instances. Fix: apiKeySecret: process.env.HALT_API_KEY_SECRET (the same on every instance).",
      )
    }
    processHmac ??= new Hmac(randomBytes(32))
    this.hmac = processHmac
    return this.hmac
  }

  callbackFailed(name: string, e: unknown): void {
    this.warnings.warn(
      WarningCode.CALLBACK_FAILED,
      `${name} threw (${e instanceof Error ? e.message : String(e)}); the request was ${name === 'skip' ? 'not skipped' : 'treated as having no identity'}. Fix the function; this is reported once.`,
    )
  }
}

function bool(v: unknown, dflt: boolean, name: string): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') fail('HALT_INVALID_OPTIONS', `${name} must be true or false, got ${String(v)}.`)
  return v
}

/** `req.user.id`, or `req.user` itself when it is a string or number. */
function defaultUserId(user: unknown): unknown {
  if (user === null || user === undefined) return undefined
  if (typeof user === 'object' || typeof user === 'function') return (user as { id?: unknown }).id
  return user
}

/** The API key of a request: `X-API-Key`, else `Authorization: Bearer <key>`. Over 4096 characters counts as none. */
export function apiKeyOf(req: RequestView): string | undefined {
  let k = req.header('x-api-key')
  if (typeof k === 'string') {
    k = k.trim()
    if (k.length > 0) return k.length <= MAX_API_KEY ? k : undefined
  }
  const auth = req.header('authorization')
  if (typeof auth === 'string' && auth.length > 7 && /^bearer[ \t]/i.test(auth)) {
    const t = auth.slice(7).trim()
    if (t.length > 0 && t.length <= MAX_API_KEY) return t
  }
  return undefined
}
